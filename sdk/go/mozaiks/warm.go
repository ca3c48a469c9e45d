// Warm caches in the snapshot.
//
// `mozaiks tool build` snapshots a Go tool after Go's runtime started, so
// what every package's init leaves is where every call starts. encoding/json
// builds its encoders and decoders per type on first use, which cost a cold
// call about half of its time; filling those caches for the types most
// calls use (JSON objects, lists, strings, numbers, booleans, a struct with
// one string field) makes every call start with them.
//
// The build sets MOZAIKS_SNAPSHOT in the snapshot's sandbox only, and this
// init removes it: a tool that is not snapshotted (one granted environment
// variables or files) does not pay for caches its one call would not use.

package mozaiks

import (
	"encoding/json"
	"fmt"
	"syscall"
)

// snapshotVariable is set while the build takes the snapshot.
const snapshotVariable = "MOZAIKS_SNAPSHOT"

func init() {
	if _, taking := syscall.Getenv(snapshotVariable); !taking {
		return
	}
	_ = syscall.Unsetenv(snapshotVariable)
	warmJSON()
}

// warmJSON runs encoding/json over the shapes a call's arguments, context
// variables, answers and results most often have.
func warmJSON() {
	sample := map[string]any{
		"text": "x", "count": 1, "share": 0.5, "done": true, "none": nil,
		"list": []any{"x", 1.0}, "object": map[string]any{"k": "v"},
	}
	text, _ := json.Marshal(sample)
	var anything any
	_ = json.Unmarshal(text, &anything)
	var object map[string]any
	_ = json.Unmarshal(text, &object)
	var raw json.RawMessage
	_ = json.Unmarshal(text, &raw)
	_, _ = json.Marshal(raw)
	var strings map[string]string
	_ = json.Unmarshal([]byte(`{"k":"v"}`), &strings)
	_, _ = json.Marshal(strings)
	var list []any
	_ = json.Unmarshal([]byte(`["x",1]`), &list)
	var number int
	_ = json.Unmarshal([]byte("1"), &number)
	_, _ = json.Marshal(number)
	var real float64
	_ = json.Unmarshal([]byte("0.5"), &real)
	_, _ = json.Marshal(real)
	var word string
	_ = json.Unmarshal([]byte(`"x"`), &word)
	_, _ = json.Marshal(word)
	var flag bool
	_ = json.Unmarshal([]byte("true"), &flag)
	_, _ = json.Marshal(flag)
	var named struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal([]byte(`{"name":"x"}`), &named)
	_, _ = json.Marshal(named)
	_ = fmt.Sprint("x", 1)
}
