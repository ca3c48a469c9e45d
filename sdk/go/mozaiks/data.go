// Documents of the calling chat's app (the WIT's `data`): JSON objects
// named by a collection and an id, each with a version the host raises on
// every write. Whose documents a call reads and writes (the app, and the
// user for User) is decided by the host from the calling chat: no method
// takes an app or a user.

package mozaiks

import (
	"encoding/json"
	"fmt"
)

// Scope is whose documents a data method acts on.
type Scope uint32

// The scopes, in the WIT's order.
const (
	// App is the documents of the calling chat's app, shared by its users.
	App Scope = iota
	// User is the documents of the calling chat's user, inside the chat's
	// app.
	User
)

// Document is one stored document.
type Document struct {
	// ID is its id inside its collection.
	ID string `json:"id"`
	// Version is raised by one on every write; the first write makes
	// version 1.
	Version uint64 `json:"version"`
	// Body is the document, a JSON object (json.Unmarshal it).
	Body json.RawMessage `json:"body"`
}

// DataErrorKind is why a data method did not do what it was asked.
type DataErrorKind uint8

// The kinds, in the WIT's order.
const (
	// Conflict: the document is not at the version the write expected.
	Conflict DataErrorKind = iota
	// TooLarge: the document is larger than the server allows.
	TooLarge
	// QuotaExceeded: the app holds as many documents as the server allows.
	QuotaExceeded
	// Invalid: an argument was refused (an empty or too long a name, a
	// body that is not a JSON object, User in a chat with no user, too
	// many filters).
	Invalid
)

// DataError is why a data method failed (the WIT's data-error). Find it
// with errors.As. A function that returns it makes a ToolError, as the
// Rust SDK does: of kind InvalidArguments for Invalid, else Failed, with
// the message of Error.
type DataError struct {
	Kind DataErrorKind
	// Found is, for a Conflict, the document's version now; nil when it
	// does not exist.
	Found *uint64
	// Message says why, for the other kinds (naming the size, the limit
	// or the argument).
	Message string
}

// Error is the message: for a Conflict "version conflict: the document is
// at version N" (or "... does not exist"), else Message.
func (e *DataError) Error() string {
	if e.Kind != Conflict {
		return e.Message
	}
	if e.Found == nil {
		return "version conflict: the document does not exist"
	}
	return fmt.Sprintf("version conflict: the document is at version %d", *e.Found)
}

// IfVersion is an expected version for DataPut and DataRemove: the write
// happens only if the document is at version n now; IfVersion(0), only if
// it does not exist.
func IfVersion(n uint64) *uint64 { return &n }

// DataGet is the document id of collection; nil (and no error) when there
// is none.
func (c *Call) DataGet(scope Scope, collection, id string) (*Document, error) {
	doc, failure := rawDataGet(uint32(scope), collection, id)
	if failure != nil {
		return nil, failure
	}
	return doc, nil
}

// DataPut writes body (anything encoding/json takes that makes a JSON
// object) as the document id of collection and returns its new version.
// With expectedVersion (IfVersion(n)) only if the document is at version n
// now (0: only if it does not exist), otherwise a *DataError of kind
// Conflict; nil writes whatever is there. The error is a *DataError.
func (c *Call) DataPut(scope Scope, collection, id string, body any, expectedVersion *uint64) (uint64, error) {
	text, err := json.Marshal(body)
	if err != nil {
		return 0, &DataError{Kind: Invalid, Message: fmt.Sprintf("the document body is not JSON: %v", err)}
	}
	version, failure := rawDataPut(uint32(scope), collection, id, string(text), expectedVersion)
	if failure != nil {
		return 0, failure
	}
	return version, nil
}

// DataRemove removes the document id of collection; true if it existed.
// With expectedVersion only if it is at that version now, otherwise a
// *DataError of kind Conflict.
func (c *Call) DataRemove(scope Scope, collection, id string, expectedVersion *uint64) (bool, error) {
	removed, failure := rawDataRemove(uint32(scope), collection, id, expectedVersion)
	if failure != nil {
		return false, failure
	}
	return removed, nil
}

// Filter is one condition of a query: the document's field at Path
// (dotted: `customer.id`) equals Value (anything encoding/json takes).
type Filter struct {
	Path  string
	Value any
}

// Query is which documents of a collection DataQuery returns. The zero
// Query is every document, up to 100.
type Query struct {
	// Filters must all match.
	Filters []Filter
	// After, when not "", keeps only ids after it (the last id of the
	// previous page).
	After string
	// Limit is the most documents returned; 0 is 100, the most the host
	// returns (it also stops a page once its bodies pass 4 MiB).
	Limit uint32
}

// DataQuery is the documents of collection that match query, by id. The
// error is a *DataError.
func (c *Call) DataQuery(scope Scope, collection string, query Query) ([]Document, error) {
	filters := make([][2]string, len(query.Filters))
	for i, filter := range query.Filters {
		text, err := json.Marshal(filter.Value)
		if err != nil {
			return nil, &DataError{Kind: Invalid, Message: fmt.Sprintf("the value of the filter on `%s` is not JSON: %v", filter.Path, err)}
		}
		filters[i] = [2]string{filter.Path, string(text)}
	}
	limit := query.Limit
	if limit == 0 {
		limit = 100
	}
	docs, failure := rawDataQuery(uint32(scope), collection, filters, query.After, limit)
	if failure != nil {
		return nil, failure
	}
	return docs, nil
}
