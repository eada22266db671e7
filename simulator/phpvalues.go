package simulator

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// phpJSONString encodes like PHP's json_encode with default flags: slashes
// escaped as \/ (PLACEMENT_OPTIONS in the docs reads {"URI":"\/crm\/..."}).
func phpJSONString(v any) string {
	b, err := marshalJSON(v)
	if err != nil {
		return "{}"
	}
	return strings.ReplaceAll(string(b), "/", `\/`)
}

// str converts a parameter to a string the way PHP's (string) cast would.
func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		if t {
			return "1"
		}
		return ""
	case int:
		return strconv.Itoa(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	default:
		return ""
	}
}

// phpInt converts like PHP's intval(), which is what Bitrix24 applies to
// identifiers: leading digits count, "12abc" is 12, "abc" is 0, 12.7 is 12.
func phpInt(v any) int {
	switch t := v.(type) {
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return int(n)
		}
		if f, err := t.Float64(); err == nil {
			return int(f)
		}
		return 0
	case bool:
		return bit(t)
	case *omap:
		// intval() of an array: 1 when it has elements, else 0. A batch
		// reference that did not resolve can hand a method a whole list.
		if t != nil && t.Len() > 0 {
			return 1
		}
		return 0
	case int:
		return t
	case float64:
		return int(t)
	case string:
		s := strings.TrimLeft(t, " \t\n\r\v\f")
		sign := 1
		if s != "" && (s[0] == '-' || s[0] == '+') {
			if s[0] == '-' {
				sign = -1
			}
			s = s[1:]
		}
		n := 0
		for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			n = n*10 + int(s[i]-'0')
			if n > 1<<40 {
				return 0 // absurdly large ids are simply not found
			}
		}
		return sign * n
	}
	return 0
}

// yn is a Bitrix24 "Y"/"N" flag.
func yn(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// bit is a 1/0 flag.
func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// list returns the elements of a PHP array or JSON list in order.
func list(v any) []any {
	switch t := v.(type) {
	case []any:
		return t
	case *omap:
		out := make([]any, 0, len(t.keys))
		for _, k := range t.keys {
			out = append(out, t.vals[k])
		}
		return out
	}
	return nil
}

// flatten turns a parameter tree into PHP-style url.Values for Call records,
// leaving out "auth" so that tokens never end up in a record.
func flatten(m *omap) url.Values {
	out := url.Values{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case *omap:
			for _, k := range t.keys {
				walk(prefix+"["+k+"]", t.vals[k])
			}
		case []any:
			for i, e := range t {
				walk(prefix+"["+strconv.Itoa(i)+"]", e)
			}
		default:
			out.Add(prefix, str(v))
		}
	}
	for _, k := range m.keys {
		if k == "auth" {
			continue
		}
		walk(k, m.vals[k])
	}
	return out
}
