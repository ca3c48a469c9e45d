// Fresh randomness for every call of a snapshotted tool.
//
// `mozaiks tool build` snapshots a Go tool after Go's runtime started (the
// heap, the scheduler, every package's init), so that a call's fresh
// instance does not start Go again. The snapshot also holds the state of
// the runtime's random generator, which math/rand, math/rand/v2 and
// hash/maphash draw from: without this file every call would draw the same
// numbers. reseed gives that generator a new seed from the host's
// `random_get` at the start of each call, as Go's own start-up does.
//
// The generator is the runtime's, so this reaches into it by linkname
// (built with -checklinkname=0): its global state and the one M of a
// WebAssembly program. The layout below is Go 1.27's, the toolchain
// `mozaiks tool build` installs; a test of the repository
// (draws_differ_between_calls) fails if a toolchain changes it, and reseed
// refuses to write into a layout that does not look like it.

package mozaiks

import "unsafe"

// reseedMarker tells `mozaiks tool build` that this helper reseeds the
// runtime's generator, so the tool may be snapshotted.
var reseedMarker = [...]byte{
	'm', 'o', 'z', 'a', 'i', 'k', 's', ':', 'r', 'e', 's', 'e', 'e', 'd', 's', '-',
	'r', 'u', 'n', 't', 'i', 'm', 'e', '-', 'r', 'a', 'n', 'd', ':', 'v', '1',
}

// runtimeGlobalRand mirrors the runtime's globalRand: a mutex (one
// uintptr), the seed it was started from, a chacha8rand.State (304 bytes)
// and whether it was initialised.
type runtimeGlobalRand struct {
	lock  uintptr
	seed  [32]byte
	state [38]uint64
	init  bool
}

//go:linkname globalRand runtime.globalRand
var globalRand runtimeGlobalRand

//go:linkname chacha8Init internal/chacha8rand.(*State).Init
func chacha8Init(state unsafe.Pointer, seed [32]byte)

// mrandinit seeds an M's generator from the global one.
//
//go:linkname mrandinit runtime.mrandinit
func mrandinit(mp unsafe.Pointer)

//go:linkname acquirem runtime.acquirem
func acquirem() unsafe.Pointer

//go:linkname releasem runtime.releasem
func releasem(mp unsafe.Pointer)

//go:wasmimport wasi_snapshot_preview1 random_get
func randomGet(buf unsafe.Pointer, length uint32) uint32

// reseeded is false in the snapshot and in every fresh instance.
var reseeded bool

// reseed seeds the runtime's generators anew, once per instance.
func reseed() {
	if reseeded {
		return
	}
	reseeded = true
	if !globalRand.init || globalRand.lock != 0 {
		panic("mozaiks: the Go runtime's random state is not laid out as this helper expects (a toolchain other than Go 1.27?)")
	}
	var seed [32]byte
	if randomGet(unsafe.Pointer(&seed[0]), uint32(len(seed))) != 0 {
		panic("mozaiks: random_get failed")
	}
	chacha8Init(unsafe.Pointer(&globalRand.state), seed)
	mp := acquirem()
	mrandinit(mp)
	releasem(mp)
}

// init keeps the marker in the module.
func init() {
	if reseedMarker[0] != 'm' {
		panic("mozaiks: the reseed marker was overwritten")
	}
}
