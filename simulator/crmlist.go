package simulator

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// listResult applies filter, order, select and start like the classic CRM
// list methods, 50 per page, with total and (when more remain) next.
// start=-1 is the documented "no count" mode (settings/performance/
// huge-data.md): the first 50 matches, total 0 and no next, for keyset
// paging with ">ID".
func listResult(c *callCtx, recs []obj) (result, *apiError) {
	filter, _ := c.param("filter").(*omap)
	var kept []obj
	for _, r := range recs {
		if matchFilter(r, filter) {
			kept = append(kept, r)
		}
	}
	order, _ := c.param("order").(*omap)
	sortRecords(kept, order)
	total := len(kept)
	start := c.int("start")
	noCount := start == -1
	if start < 0 {
		start = 0
	}
	end := min(start+pageSize, total)
	page := []any{}
	sel := selectFields(c.param("select"))
	for i := start; i < end; i++ {
		page = append(page, project(kept[i], sel, "ID"))
	}
	if noCount {
		zero := 0
		return result{value: page, total: &zero}, nil
	}
	res := result{value: page, total: &total}
	if end < total {
		next := end
		res.next = &next
	}
	return res, nil
}

func selectFields(v any) []string {
	var out []string
	for _, e := range list(v) {
		if s := strings.ToUpper(strings.TrimSpace(str(e))); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// project keeps the selected fields of a record, matched
// case-insensitively (crm.item.list takes camelCase names in any case;
// the classic lists' names are upper case already); no select or "*"
// means all fields. SILENT: the id field (ID, or crm.item's id) always
// comes back, as list consumers page by it.
func project(r obj, sel []string, id string) obj {
	if len(sel) == 0 {
		return r
	}
	out := newObj()
	for _, k := range r.keys {
		want := k == id
		for _, s := range sel {
			want = want || s == "*" || strings.EqualFold(s, k)
		}
		if want {
			out.Set(k, r.vals[k])
		}
	}
	return out
}

func matchFilter(r obj, filter *omap) bool {
	if filter == nil {
		return true
	}
	for _, key := range filter.keys {
		op, field := "=", key
		// Longest prefixes first.
		for _, o := range []string{">=", "<=", "!@", "!=", "=%", "%=", ">", "<", "@", "%", "=", "!"} {
			if strings.HasPrefix(key, o) {
				op, field = o, key[len(o):]
				break
			}
		}
		field = strings.ToUpper(field)
		val, has := r.vals[field]
		if !has {
			continue // SILENT: unknown filter fields are ignored
		}
		have := str(val)
		want := filter.vals[key]
		if _, isList := want.([]any); isList && (op == "=" || op == "!" || op == "!=") {
			// A list under a plain key is IN, under "!" NOT IN, as
			// CCrmLead::GetListEx builds the SQL for array values.
			op = map[string]string{"=": "@", "!": "!@", "!=": "!@"}[op]
		}
		if m, isMap := want.(*omap); isMap && (op == "=" || op == "!" || op == "!=") && m.Len() > 0 {
			op = map[string]string{"=": "@", "!": "!@", "!=": "!@"}[op]
		}
		switch op {
		case "@", "!@":
			in := false
			for _, e := range list(want) {
				if cmpValues(have, str(e)) == 0 {
					in = true
				}
			}
			if in != (op == "@") {
				return false
			}
		case "%":
			if !strings.Contains(strings.ToLower(have), strings.ToLower(str(want))) {
				return false
			}
		case "=%", "%=":
			if !likeMatch(strings.ToLower(have), strings.ToLower(str(want))) {
				return false
			}
		default:
			c := cmpValues(have, str(want))
			pass := map[string]bool{"=": c == 0, "!": c != 0, "!=": c != 0, ">": c > 0, ">=": c >= 0, "<": c < 0, "<=": c <= 0}[op]
			if !pass {
				return false
			}
		}
	}
	return true
}

// likeMatch implements SQL LIKE with % wildcards.
func likeMatch(s, pattern string) bool {
	parts := strings.Split(pattern, "%")
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, part := range parts[1:] {
		last := i == len(parts)-2
		if last {
			return strings.HasSuffix(s, part)
		}
		idx := strings.Index(s, part)
		if idx < 0 {
			return false
		}
		s = s[idx+len(part):]
	}
	return true
}

// cmpValues compares numerically when both sides are integers, as instants
// when both are dates (DATE_CREATE against "2024-05-01" or an ISO 8601
// time), and otherwise as case-insensitive strings.
func cmpValues(a, b string) int {
	if x, ok := parseDate(a); ok {
		if y, ok := parseDate(b); ok {
			return x.Compare(y)
		}
	}
	if x, err := strconv.Atoi(a); err == nil {
		if y, err := strconv.Atoi(b); err == nil {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

// sortRecords orders by the given fields; SILENT: the default order of these
// deprecated list methods is undocumented, ID ascending is used.
func sortRecords(recs []obj, order *omap) {
	type key struct {
		field string
		desc  bool
	}
	var keys []key
	if order != nil {
		for _, k := range order.keys {
			keys = append(keys, key{strings.ToUpper(k), strings.EqualFold(str(order.vals[k]), "DESC")})
		}
	}
	keys = append(keys, key{"ID", false})
	sort.SliceStable(recs, func(i, j int) bool {
		for _, k := range keys {
			c := cmpValues(str(recs[i].vals[k.field]), str(recs[j].vals[k.field]))
			if c == 0 {
				continue
			}
			if k.desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
}

// parseDate reads the date forms a filter may carry: the ISO 8601 time
// the REST API answers with, and a bare date. SILENT: the docs do not say
// in which zone a bare date is read; the simulator's (the portal's) zone.
func parseDate(s string) (time.Time, bool) {
	if len(s) < 10 || s[4] != '-' {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
