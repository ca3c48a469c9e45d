// The canonical ABI of the WIT contract (wit/ of the mozaiks repository,
// package mozaiks:plugin@0.1.2), by hand, with the standard library only:
// Go modules cannot be fetched on every machine, so `wit-bindgen go` output
// (which needs them) is not used. Each function below is one import or
// export of the world `plugin`; the layouts are those of wasm32 (strings
// and lists are a pointer and a length, records their fields each aligned
// to its size (u64 to 8), options, results and variants a tag byte and a
// payload aligned to the largest alignment of their cases). A change of the
// contract is a change here.

package mozaiks

import (
	"encoding/json"
	"unsafe"
)

// adapterArena is memory for the WASI preview1 adapter, which turns the
// module's WASI calls into WASI 0.2 ones: its stack and its state, a 64 KiB
// page each. Go's runtime takes every page of the linear memory above its
// static data for its heap, pages the adapter would add with memory.grow
// included, so the adapter must not grow the memory itself. `mozaiks tool
// build` finds this array by its first bytes and gives the module an
// allocator for the adapter (`cabi_realloc_adapter`, plain WebAssembly that
// works before Go's runtime starts) that hands out the array's bytes. The
// layout is the build's (host/src/cli/tool/adapter_arena.rs): a marker, the
// array's size (u32, little-endian), the bytes handed out so far (u32),
// then the bytes. Go only reads its header, in init.
var adapterArena = [adapterArenaSize]byte{
	'm', 'o', 'z', 'a', 'i', 'k', 's', ':', 'a', 'd', 'a', 'p', 't', 'e', 'r', '-',
	'a', 'r', 'e', 'n', 'a', ':', 'v', '1',
	adapterArenaSize & 0xff, adapterArenaSize >> 8 & 0xff, adapterArenaSize >> 16 & 0xff, adapterArenaSize >> 24,
}

// adapterArenaSize holds the header, the adapter's two pages aligned, and
// one page to spare.
const adapterArenaSize = 32 + 3*64*1024 + 64

// init reads the arena, so that the linker keeps it, and checks its header.
// (The marker must not appear in the module twice: no string holds it.)
func init() {
	if adapterArena[0] != 'm' || adapterArena[24] != adapterArenaSize&0xff {
		panic("mozaiks: the WASI adapter's arena was overwritten")
	}
}

// keep holds what the host may still read after an export returned (its
// result) or what it asked the component to allocate, so the collector
// does not free it during the call. Every call runs in a fresh instance,
// so nothing is kept for long.
var keep [][]byte

func alloc(size, align uint32) unsafe.Pointer {
	if size == 0 {
		return unsafe.Pointer(uintptr(align))
	}
	buffer := make([]byte, size+align)
	keep = append(keep, buffer)
	address := uintptr(unsafe.Pointer(&buffer[0]))
	address = (address + uintptr(align) - 1) &^ (uintptr(align) - 1)
	return unsafe.Pointer(address)
}

// cabiRealloc is how the host writes strings and lists into the
// component's memory (the arguments of `call`, the answers of imports).
//
//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uint32) unsafe.Pointer {
	fresh := alloc(newSize, align)
	if old != nil && oldSize > 0 {
		copy(unsafe.Slice((*byte)(fresh), newSize), unsafe.Slice((*byte)(old), oldSize))
	}
	return fresh
}

// lowered is a Go string as the ABI's (pointer, length); the bytes stay
// alive in keep.
func lowered(s string) (unsafe.Pointer, uint32) {
	if len(s) == 0 {
		return unsafe.Pointer(uintptr(1)), 0
	}
	buffer := []byte(s)
	keep = append(keep, buffer)
	return unsafe.Pointer(&buffer[0]), uint32(len(buffer))
}

// lifted is the string at (pointer, length), copied into Go.
func lifted(ptr unsafe.Pointer, length uint32) string {
	if length == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(ptr), length))
}

func u8At(base unsafe.Pointer, offset uintptr) uint8 {
	return *(*uint8)(unsafe.Add(base, offset))
}

func u32At(base unsafe.Pointer, offset uintptr) uint32 {
	return *(*uint32)(unsafe.Add(base, offset))
}

func u64At(base unsafe.Pointer, offset uintptr) uint64 {
	return *(*uint64)(unsafe.Add(base, offset))
}

func setU8(base unsafe.Pointer, offset uintptr, v uint8) {
	*(*uint8)(unsafe.Add(base, offset)) = v
}

func setU32(base unsafe.Pointer, offset uintptr, v uint32) {
	*(*uint32)(unsafe.Add(base, offset)) = v
}

func stringAt(base unsafe.Pointer, offset uintptr) string {
	return lifted(unsafe.Pointer(uintptr(u32At(base, offset))), u32At(base, offset+4))
}

func setString(base unsafe.Pointer, offset uintptr, s string) {
	ptr, length := lowered(s)
	setU32(base, offset, uint32(uintptr(ptr)))
	setU32(base, offset+4, length)
}

// ---- imports ----

//go:wasmimport mozaiks:plugin/context@0.1.2 get
func contextGet(keyPtr unsafe.Pointer, keyLen uint32, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/context@0.1.2 set
func contextSet(keyPtr unsafe.Pointer, keyLen uint32, valuePtr unsafe.Pointer, valueLen uint32, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/context@0.1.2 remove
func contextRemove(keyPtr unsafe.Pointer, keyLen uint32) uint32

//go:wasmimport mozaiks:plugin/ui@0.1.2 ask
func uiAsk(componentPtr unsafe.Pointer, componentLen uint32, payloadPtr unsafe.Pointer, payloadLen uint32, display uint32, timeoutMs uint32, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/ui@0.1.2 notify
func uiNotify(componentPtr unsafe.Pointer, componentLen uint32, payloadPtr unsafe.Pointer, payloadLen uint32, display uint32)

//go:wasmimport mozaiks:plugin/log@0.1.2 log
func logLog(level uint32, messagePtr unsafe.Pointer, messageLen uint32, fieldsPtr unsafe.Pointer, fieldsLen uint32)

//go:wasmimport mozaiks:plugin/invocation@0.1.2 idempotency-key
func invocationIdempotencyKey(ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/invocation@0.1.2 attempt
func invocationAttempt() uint32

//go:wasmimport mozaiks:plugin/secrets@0.1.2 get
func secretsGet(namePtr unsafe.Pointer, nameLen uint32, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/data@0.1.2 get
func dataGet(scope uint32, collectionPtr unsafe.Pointer, collectionLen uint32, idPtr unsafe.Pointer, idLen uint32, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/data@0.1.2 put
func dataPut(scope uint32, collectionPtr unsafe.Pointer, collectionLen uint32, idPtr unsafe.Pointer, idLen uint32, bodyPtr unsafe.Pointer, bodyLen uint32, hasExpected uint32, expected uint64, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/data@0.1.2 remove
func dataRemove(scope uint32, collectionPtr unsafe.Pointer, collectionLen uint32, idPtr unsafe.Pointer, idLen uint32, hasExpected uint32, expected uint64, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/data@0.1.2 query
func dataQuery(scope uint32, collectionPtr unsafe.Pointer, collectionLen uint32, filtersPtr unsafe.Pointer, filtersLen uint32, hasAfter uint32, afterPtr unsafe.Pointer, afterLen uint32, limit uint32, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/chat@0.1.2 recent-messages
func chatRecentMessages(limit uint32, ret unsafe.Pointer)

//go:wasmimport mozaiks:plugin/chat@0.1.2 structured-output
func chatStructuredOutput(agentPtr unsafe.Pointer, agentLen uint32, ret unsafe.Pointer)

// rawIdempotencyKey: invocation.idempotency-key() -> string.
func rawIdempotencyKey() string {
	ret := alloc(8, 4)
	invocationIdempotencyKey(ret)
	return stringAt(ret, 0)
}

// rawContextGet: context.get(key) -> option<string>.
func rawContextGet(key string) (string, bool) {
	ret := alloc(12, 4)
	k, kl := lowered(key)
	contextGet(k, kl, ret)
	return optionString(ret)
}

// optionString reads the return area of an option<string>.
func optionString(ret unsafe.Pointer) (string, bool) {
	if u8At(ret, 0) == 0 {
		return "", false
	}
	return stringAt(ret, 4), true
}

// rawContextSet: context.set(key, value) -> result<_, context-error>;
// returns the refusal's message, or "" and true.
func rawContextSet(key, value string) (string, bool) {
	ret := alloc(16, 4)
	k, kl := lowered(key)
	v, vl := lowered(value)
	contextSet(k, kl, v, vl, ret)
	if u8At(ret, 0) == 0 {
		return "", true
	}
	// Both variants of context-error carry one string.
	return stringAt(ret, 8), false
}

func rawContextRemove(key string) bool {
	k, kl := lowered(key)
	return contextRemove(k, kl) != 0
}

// The tags of ui-error.
const (
	uiTimeout = iota
	uiCancelled
	uiUnavailable
	uiInvalidRequest
)

// rawUIAsk: ui.ask(request) -> result<string, ui-error>; on an error,
// returns its tag and message.
func rawUIAsk(component, payload string, display, timeoutMs uint32) (answer string, errTag int, errMessage string) {
	ret := alloc(16, 4)
	c, cl := lowered(component)
	p, pl := lowered(payload)
	uiAsk(c, cl, p, pl, display, timeoutMs, ret)
	if u8At(ret, 0) == 0 {
		return stringAt(ret, 4), -1, ""
	}
	tag := int(u8At(ret, 4))
	if tag == uiUnavailable || tag == uiInvalidRequest {
		return "", tag, stringAt(ret, 8)
	}
	return "", tag, ""
}

func rawUINotify(component, payload string, display uint32) {
	c, cl := lowered(component)
	p, pl := lowered(payload)
	uiNotify(c, cl, p, pl, display)
}

func rawLog(level uint32, message string, fields [][2]string) {
	list := alloc(uint32(16*len(fields)), 4)
	for i, field := range fields {
		setString(list, uintptr(16*i), field[0])
		setString(list, uintptr(16*i+8), field[1])
	}
	m, ml := lowered(message)
	logLog(level, m, ml, list, uint32(len(fields)))
}

// rawSecretGet: secrets.get(name) -> result<option<string>, string>; the
// value and whether it has one, or the host's refusal and true.
func rawSecretGet(name string) (value string, has bool, refusal string, refused bool) {
	// result tag at 0; ok: option tag at 4, string at 8; err: string at 4.
	ret := alloc(16, 4)
	n, nl := lowered(name)
	secretsGet(n, nl, ret)
	if u8At(ret, 0) != 0 {
		return "", false, stringAt(ret, 4), true
	}
	if u8At(ret, 4) == 0 {
		return "", false, "", false
	}
	return stringAt(ret, 8), true, "", false
}

// optionalU64 is an option<u64> argument, flattened: its tag and value.
func optionalU64(v *uint64) (uint32, uint64) {
	if v == nil {
		return 0, 0
	}
	return 1, *v
}

// dataErrorAt is the data-error at base+offset: its tag byte, then its
// payload at 8 (option<u64> aligns the cases to 8; the option's own tag at
// 8 and its u64 at 16, or a string).
func dataErrorAt(base unsafe.Pointer, offset uintptr) *DataError {
	kind := DataErrorKind(u8At(base, offset))
	if kind != Conflict {
		return &DataError{Kind: kind, Message: stringAt(base, offset+8)}
	}
	failure := &DataError{Kind: Conflict}
	if u8At(base, offset+8) != 0 {
		found := u64At(base, offset+16)
		failure.Found = &found
	}
	return failure
}

// documentAt is the document at base+offset: id at 0, version (u64) at 8,
// body at 16; 24 bytes, aligned to 8.
func documentAt(base unsafe.Pointer, offset uintptr) Document {
	return Document{
		ID:      stringAt(base, offset),
		Version: u64At(base, offset+8),
		Body:    json.RawMessage(stringAt(base, offset+16)),
	}
}

// The results of the data functions are a tag byte and their payload at 8
// (data-error aligns them to 8): a data-error, or the ok value.

// rawDataGet: data.get(scope, collection, id) -> result<option<document>,
// data-error>; nil and nil when there is no such document.
func rawDataGet(scope uint32, collection, id string) (*Document, *DataError) {
	// ok: option tag at 8, document at 16 (24 bytes).
	ret := alloc(40, 8)
	c, cl := lowered(collection)
	i, il := lowered(id)
	dataGet(scope, c, cl, i, il, ret)
	if u8At(ret, 0) != 0 {
		return nil, dataErrorAt(ret, 8)
	}
	if u8At(ret, 8) == 0 {
		return nil, nil
	}
	doc := documentAt(ret, 16)
	return &doc, nil
}

// rawDataPut: data.put(scope, collection, id, body, expected-version) ->
// result<u64, data-error>.
func rawDataPut(scope uint32, collection, id, body string, expected *uint64) (uint64, *DataError) {
	ret := alloc(32, 8)
	c, cl := lowered(collection)
	i, il := lowered(id)
	b, bl := lowered(body)
	has, version := optionalU64(expected)
	dataPut(scope, c, cl, i, il, b, bl, has, version, ret)
	if u8At(ret, 0) != 0 {
		return 0, dataErrorAt(ret, 8)
	}
	return u64At(ret, 8), nil
}

// rawDataRemove: data.remove(scope, collection, id, expected-version) ->
// result<bool, data-error>.
func rawDataRemove(scope uint32, collection, id string, expected *uint64) (bool, *DataError) {
	ret := alloc(32, 8)
	c, cl := lowered(collection)
	i, il := lowered(id)
	has, version := optionalU64(expected)
	dataRemove(scope, c, cl, i, il, has, version, ret)
	if u8At(ret, 0) != 0 {
		return false, dataErrorAt(ret, 8)
	}
	return u8At(ret, 8) != 0, nil
}

// rawDataQuery: data.query(scope, collection, filters, after-id, limit) ->
// result<list<document>, data-error>. filters are (path, JSON text) pairs;
// after "" is none.
func rawDataQuery(scope uint32, collection string, filters [][2]string, after string, limit uint32) ([]Document, *DataError) {
	// A filter is two strings: 16 bytes.
	list := alloc(uint32(16*len(filters)), 4)
	for i, filter := range filters {
		setString(list, uintptr(16*i), filter[0])
		setString(list, uintptr(16*i+8), filter[1])
	}
	var hasAfter uint32
	a, al := unsafe.Pointer(nil), uint32(0)
	if after != "" {
		hasAfter = 1
		a, al = lowered(after)
	}
	ret := alloc(32, 8)
	c, cl := lowered(collection)
	dataQuery(scope, c, cl, list, uint32(len(filters)), hasAfter, a, al, limit, ret)
	if u8At(ret, 0) != 0 {
		return nil, dataErrorAt(ret, 8)
	}
	docs := unsafe.Pointer(uintptr(u32At(ret, 8)))
	found := make([]Document, u32At(ret, 12))
	for i := range found {
		found[i] = documentAt(docs, uintptr(24*i))
	}
	return found, nil
}

// rawRecentMessages: chat.recent-messages(limit) -> list<message>. A
// message is seq (u64) at 0, role at 8, agent (option<string>: tag at 16,
// string at 20), content at 28; 40 bytes, aligned to 8.
func rawRecentMessages(limit uint32) []Message {
	ret := alloc(8, 4)
	chatRecentMessages(limit, ret)
	list := unsafe.Pointer(uintptr(u32At(ret, 0)))
	messages := make([]Message, u32At(ret, 4))
	for i := range messages {
		at := uintptr(40 * i)
		messages[i] = Message{
			Seq:     u64At(list, at),
			Role:    stringAt(list, at+8),
			Content: stringAt(list, at+28),
		}
		if u8At(list, at+16) != 0 {
			messages[i].Agent = stringAt(list, at+20)
		}
	}
	return messages
}

// rawStructuredOutput: chat.structured-output(agent) -> option<string>.
func rawStructuredOutput(agent string) (string, bool) {
	ret := alloc(12, 4)
	a, al := lowered(agent)
	chatStructuredOutput(a, al, ret)
	return optionString(ret)
}

// ---- exports ----

// describe: () -> list<function-spec>.
//
//go:wasmexport mozaiks:plugin/tool@0.1.2#describe
func exportDescribe() unsafe.Pointer {
	specs := alloc(uint32(24*len(toolbox)), 4)
	for i, f := range toolbox {
		setString(specs, uintptr(24*i), f.name)
		setString(specs, uintptr(24*i+8), f.description)
		setString(specs, uintptr(24*i+16), f.parameters)
	}
	ret := alloc(8, 4)
	setU32(ret, 0, uint32(uintptr(specs)))
	setU32(ret, 4, uint32(len(toolbox)))
	return ret
}

// call: (name, arguments, call-info) -> result<string, tool-error>.
//
//go:wasmexport mozaiks:plugin/tool@0.1.2#call
func exportCall(
	namePtr unsafe.Pointer, nameLen uint32,
	argsPtr unsafe.Pointer, argsLen uint32,
	chatPtr unsafe.Pointer, chatLen uint32,
	workflowPtr unsafe.Pointer, workflowLen uint32,
	agentPtr unsafe.Pointer, agentLen uint32,
	callPtr unsafe.Pointer, callLen uint32,
) unsafe.Pointer {
	reseed()
	info := Call{
		ChatID:     lifted(chatPtr, chatLen),
		Workflow:   lifted(workflowPtr, workflowLen),
		Agent:      lifted(agentPtr, agentLen),
		ToolCallID: lifted(callPtr, callLen),
	}
	result, failure := dispatch(lifted(namePtr, nameLen), lifted(argsPtr, argsLen), &info)
	ret := alloc(16, 4)
	if failure == nil {
		setU8(ret, 0, 0)
		setString(ret, 4, result)
		return ret
	}
	setU8(ret, 0, 1)
	setU8(ret, 4, uint8(failure.Kind))
	setString(ret, 8, failure.Message)
	return ret
}
