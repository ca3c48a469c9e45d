// The canonical ABI of the WIT contract (wit/ of the mozaiks repository,
// package mozaiks:plugin@0.1.2), by hand, with the standard library only:
// Go modules cannot be fetched on every machine, so `wit-bindgen go` output
// (which needs them) is not used. Each function below is one import or
// export of the world `plugin`; the layouts are those of wasm32 (strings
// are a pointer and a length, variants a tag byte and a payload aligned to
// 4 bytes). A change of the contract is a change here.

package mozaiks

import "unsafe"

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
