package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// maxBodyBytes caps a REST request body; Bitrix24's own limit is not
// documented, but an unbounded read would let one test exhaust memory.
const maxBodyBytes = 8 << 20

// omap is an insertion-ordered map, the model of a PHP array: REST parameters
// are parsed into it (order matters for batch commands and item lists) and
// responses are built from it (so JSON keys come out in a stable, natural
// order such as ID first).
type omap struct {
	keys []string
	vals map[string]any
	next int // PHP's next integer key for "a[]=" appends
}

func newOmap() *omap { return &omap{vals: map[string]any{}} }

func (m *omap) Set(k string, v any) *omap {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
	if n, err := strconv.Atoi(k); err == nil && n >= m.next {
		m.next = n + 1
	}
	return m
}

func (m *omap) Append(v any) { m.Set(strconv.Itoa(m.next), v) }

func (m *omap) Get(k string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m.vals[k]
	return v, ok
}

// GetFold looks a key up case-insensitively, exact match first. Bitrix24
// method parameters are matched loosely (CRest sends FILTER, the docs filter).
func (m *omap) GetFold(k string) (any, bool) {
	if v, ok := m.Get(k); ok {
		return v, true
	}
	if m == nil {
		return nil, false
	}
	for _, key := range m.keys {
		if strings.EqualFold(key, k) {
			return m.vals[key], true
		}
	}
	return nil, false
}

// fold is GetFold without the flag, for optional parameters (nil if absent).
func (m *omap) fold(k string) any {
	v, _ := m.GetFold(k)
	return v
}

func (m *omap) Len() int {
	if m == nil {
		return 0
	}
	return len(m.keys)
}

// isList reports whether the keys are exactly 0..n-1 in order, which is when
// PHP's json_encode writes an array as a JSON list.
func (m *omap) isList() bool {
	for i, k := range m.keys {
		if k != strconv.Itoa(i) {
			return false
		}
	}
	return true
}

// MarshalJSON writes the map like PHP's json_encode would: a list when the
// keys are 0..n-1 (so an empty map is []), an object otherwise.
func (m *omap) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	return m.marshal(!m.isList())
}

// marshal writes the values in key order, as an object or as a list.
func (m *omap) marshal(object bool) ([]byte, error) {
	var buf bytes.Buffer
	open, end := byte('['), byte(']')
	if object {
		open, end = '{', '}'
	}
	buf.WriteByte(open)
	for i, k := range m.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		if object {
			_ = writeJSON(&buf, k) // a string always encodes
			buf.WriteByte(':')
		}
		if err := writeJSON(&buf, m.vals[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte(end)
	return buf.Bytes(), nil
}

// obj is a JSON object that stays an object even when empty or when its
// keys are numeric (Bitrix24 records).
type obj struct{ *omap }

func newObj() obj { return obj{newOmap()} }

// fields builds an object from alternating keys and values, in that order:
// records are written as data, one line holding several fields.
func fields(kv ...any) obj {
	o := newObj()
	for i := 0; i+1 < len(kv); i += 2 {
		o.Set(kv[i].(string), kv[i+1])
	}
	return o
}

func (o obj) Set(k string, v any) obj { o.omap.Set(k, v); return o }

func (o obj) MarshalJSON() ([]byte, error) {
	if o.omap == nil {
		return []byte("{}"), nil
	}
	return o.marshal(true)
}

func writeJSON(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
	return nil
}

// marshalJSON encodes without HTML escaping (Bitrix24 does not escape <>&).
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parsePHPQuery parses a query string with PHP's nested-key rules:
// a[b][c]=1, a[]=1 (append), repeated plain keys overwrite.
func parsePHPQuery(raw string, into *omap) {
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			key = k
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			val = v
		}
		setPHPKey(into, key, val)
	}
}

// setPHPKey stores val under a PHP-style key such as "filter[@ID][]".
func setPHPKey(root *omap, key string, val any) {
	base, rest, nested := strings.Cut(key, "[")
	if base == "" {
		return // PHP drops keys like "[x]=1"
	}
	if !nested || !strings.Contains(rest, "]") {
		root.Set(key, val)
		return
	}
	var segs []string
	rest = "[" + rest
	for strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			break
		}
		segs = append(segs, rest[1:end])
		rest = rest[end+1:]
	}
	cur := root
	name := base
	for _, seg := range segs {
		child, ok := cur.vals[name].(*omap)
		if !ok {
			child = newOmap()
			cur.Set(name, child)
		}
		cur = child
		if seg == "" {
			seg = strconv.Itoa(cur.next)
		}
		name = seg
	}
	cur.Set(name, val)
}

// maxJSONDepth bounds nesting so that a hostile body cannot exhaust the stack.
const maxJSONDepth = 64

// decodeJSONOrdered decodes JSON keeping object key order (objects become
// *omap, arrays []any, numbers json.Number).
func decodeJSONOrdered(dec *json.Decoder) (any, error) { return decodeJSONDepth(dec, 0) }

func decodeJSONDepth(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := newOmap()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				v, err := decodeJSONDepth(dec, depth+1)
				if err != nil {
					return nil, err
				}
				m.Set(k, v)
			}
			_, err := dec.Token()
			return m, err
		case '[':
			list := []any{}
			for dec.More() {
				v, err := decodeJSONDepth(dec, depth+1)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		}
		return nil, fmt.Errorf("unexpected delimiter %v", t)
	default:
		return tok, nil
	}
}

// parseRequestParams merges query-string and body parameters the way PHP's
// $_REQUEST does (body wins). It understands form, multipart and JSON bodies.
func parseRequestParams(r *http.Request) (*omap, error) {
	params := newOmap()
	parsePHPQuery(r.URL.RawQuery, params)
	if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return params, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return params, nil
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		v, err := decodeJSONOrdered(dec)
		if err != nil {
			return nil, fmt.Errorf("invalid JSON body: %w", err)
		}
		m, ok := v.(*omap)
		if !ok {
			return nil, errors.New("JSON body is not an object")
		}
		for _, k := range m.keys {
			params.Set(k, m.vals[k])
		}
	case "multipart/form-data":
		r.Body = http.MaxBytesReader(nil, r.Body, maxBodyBytes)
		if err := r.ParseMultipartForm(maxBodyBytes); err != nil { // #nosec G120 -- the body is capped by the MaxBytesReader above
			return nil, err
		}
		// multipart field order is lost by mime/multipart; sorting at least
		// makes the result deterministic.
		keys := make([]string, 0, len(r.MultipartForm.Value))
		for k := range r.MultipartForm.Value {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range r.MultipartForm.Value[k] {
				setPHPKey(params, k, v)
			}
		}
	default:
		// x-www-form-urlencoded, and (like PHP) a body without a type is ignored
		// unless it is form-encoded.
		if ct != "application/x-www-form-urlencoded" {
			return params, nil
		}
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		parsePHPQuery(string(body), params)
	}
	return params, nil
}

// readBody reads a request body of at most maxBodyBytes.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err == nil && len(body) > maxBodyBytes {
		err = errors.New("body too large")
	}
	return body, err
}
