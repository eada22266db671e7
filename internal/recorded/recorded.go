// Package recorded loads the payloads real Bitrix24 servers sent, kept in
// testdata/recorded/ with their sources (see its README). Tests of the
// parsers, the OAuth and REST clients, the handlers and the simulator all
// read them from here, so none of them can drift from what Bitrix24 sends.
package recorded

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Field is one query or form field, in recorded order.
type Field struct{ Key, Value string }

// Fields is a recorded query or form, in order.
type Fields []Field

// Get returns the value of key and whether it was sent.
func (fs Fields) Get(key string) (string, bool) {
	for _, f := range fs {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// Keys returns the keys in recorded order.
func (fs Fields) Keys() []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Key
	}
	return out
}

// Values returns the fields as url.Values.
func (fs Fields) Values() url.Values {
	v := url.Values{}
	for _, f := range fs {
		v.Add(f.Key, f.Value)
	}
	return v
}

// UnmarshalJSON keeps the object's key order.
func (fs *Fields) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("recorded: fields must be a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("recorded: field %v: %w", t, err)
		}
		*fs = append(*fs, Field{Key: t.(string), Value: v})
	}
	_, err := dec.Token()
	return err
}

// Fixture is one recorded payload: an answer of the OAuth server or of a
// portal's REST API (Status, Body), or a POST Bitrix24 makes to the app
// (Query, Form).
type Fixture struct {
	Name   string          `json:"-"`
	Source string          `json:"source"`
	Note   string          `json:"note"`
	Kind   string          `json:"kind"` // oauth, rest, frame, event
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
	// Request is, for some answers, the request that got it.
	Request json.RawMessage `json:"request"`
	Query   Fields          `json:"query"`
	Form    Fields          `json:"form"`
}

// Dir is the folder of the recordings.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "recorded")
}

// Load reads one recording by file name without ".json".
func Load(name string) (*Fixture, error) {
	// Read through an os.Root: a name cannot leave the folder.
	root, err := os.OpenRoot(Dir())
	if err != nil {
		return nil, err
	}
	defer root.Close()
	b, err := root.ReadFile(name + ".json")
	if err != nil {
		return nil, err
	}
	var f Fixture
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("recorded: %s: %w", name, err)
	}
	if f.Source == "" || f.Kind == "" {
		return nil, fmt.Errorf("recorded: %s has no source or kind", name)
	}
	f.Name = name
	return &f, nil
}

// All loads every recording of a kind ("" for all), sorted by name.
func All(kind string) ([]*Fixture, error) {
	paths, err := filepath.Glob(filepath.Join(Dir(), "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []*Fixture
	for _, p := range paths {
		f, err := Load(strings.TrimSuffix(filepath.Base(p), ".json"))
		if err != nil {
			return nil, err
		}
		if kind == "" || f.Kind == kind {
			out = append(out, f)
		}
	}
	return out, nil
}

// Shape describes a JSON value by its structure only: object keys (sorted)
// with the shape of each value, array element shapes, and the JSON type of
// scalars. Two answers of the same shape differ only in their values.
func Shape(raw []byte) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	return shape(v), nil
}

func shape(v any) string {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + shape(t[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		if len(t) == 0 {
			return "[]"
		}
		return "[" + shape(t[0]) + "]"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
