package simulator

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxBatch is the documented limit of sub-calls per batch.
const maxBatch = 50

// resultRef matches the documented reference form $result[key][path...].
var resultRef = regexp.MustCompile(`\$result\[([^\]\[]+)\]((?:\[[^\]\[]*\])*)`)

// runBatch executes a batch request whose token and scope were already
// checked. Like Bitrix24 it answers 200 whatever the sub-calls do; empty
// sections are [] (PHP's empty array), and a list of commands gives list-
// shaped sections.
//
// written reports that the response was already produced (or abandoned) by a
// fault that hit the whole request.
func (p *Portal) runBatch(w http.ResponseWriter, r *http.Request, token string, params *omap, start time.Time, rec *Call) (status int, body any, written bool) {
	s := p.s
	cmds := newOmap()
	switch t := params.fold("cmd").(type) {
	case *omap:
		for _, k := range t.keys {
			cmds.Set(k, t.vals[k])
		}
	case []any:
		for _, v := range t {
			cmds.Append(v)
		}
	}
	if cmds.Len() > maxBatch {
		e := apiErr(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
		rec.failed(e)
		return e.status, e.body(), false
	}
	haltV := params.fold("halt")
	halt := phpInt(haltV) != 0 || strings.EqualFold(str(haltV), "true")

	results, errs, totals, nexts, times := newOmap(), newOmap(), newOmap(), newOmap(), newOmap()
	// raw keeps each result as generic JSON for $result references.
	raw := map[string]any{}
	for _, key := range cmds.keys {
		subStart := s.Now()
		// SILENT: only the documented "method?query" string form is read; any
		// other value becomes an empty method name (ERROR_METHOD_NOT_FOUND).
		cmd := str(cmds.vals[key])
		method, query, _ := strings.Cut(cmd, "?")
		method = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(method), ".json"))
		sub := newOmap()
		parsePHPQuery(query, sub)
		substituteRefs(sub, raw)
		subRec := Call{Time: subStart, Method: method, Batch: true, BatchKey: key, TokenPrefix: prefix4(token), Params: flatten(sub)}

		s.mu.Lock()
		f, faulted := takeFaultLocked(&p.faults, method, true)
		s.mu.Unlock()
		var aerr *apiError
		var res result
		ran := false
		if faulted {
			if f.wholeRequest() {
				// A hang, a dropped connection or an HTML page hits the whole
				// HTTP request, as a dying portal would.
				s.log("portal %s: fault on batch sub-call %s", p.memberID, method)
				subRec.Error = "fault"
				p.record(subRec)
				_, status, errText := s.serveFault(r.Context(), w, f)
				rec.HTTPStatus, rec.Error = status, errText
				return status, nil, true
			}
			if f.Delay > 0 && !s.waitOrDone(r.Context(), f.Delay) {
				rec.Error = "fault: client gone during delay"
				return 0, nil, true
			}
			if !f.delayOnly() {
				aerr = apiErr(cmp.Or(f.Status, http.StatusInternalServerError), f.Code, f.Description)
				ran = true
			}
		}
		s.mu.Lock()
		t, st := s.checkTokenLocked(token, p)
		if st == tokenOK {
			subRec.UserID = t.userID
		}
		switch {
		case ran:
		case st == tokenOK:
			res, aerr = p.runLocked(method, t, sub, true)
		default:
			aerr = authError(token, st)
		}
		subFinish := s.nowLocked()
		s.mu.Unlock()

		if aerr != nil {
			errs.Set(key, aerr.body())
			subRec.failed(aerr)
			p.record(subRec)
			if halt {
				break
			}
			continue
		}
		subRec.HTTPStatus = http.StatusOK
		p.record(subRec)
		results.Set(key, res.value)
		raw[key] = toGeneric(res.value)
		if res.total != nil {
			totals.Set(key, *res.total)
		}
		if res.next != nil {
			nexts.Set(key, *res.next)
		}
		times.Set(key, timeInfo(subStart, subFinish, false))
	}
	return http.StatusOK, fields("result", fields("result", results, "result_error", errs, "result_total", totals,
		"result_next", nexts, "result_time", times), "time", timeInfo(start, s.Now(), true)), false
}

// substituteRefs replaces $result[key][path] references in string leaves,
// as recorded from CRestUtil::processBatchElement (platform doc, "Batch
// references"): a leaf that is exactly one reference becomes the deepest
// part of the path that resolved, array or not, even when the path did not
// resolve to its end; inside a longer string only a reference that resolved
// completely to a scalar is replaced, and anything else is left as written.
func substituteRefs(m *omap, results map[string]any) {
	for _, k := range m.keys {
		switch v := m.vals[k].(type) {
		case *omap:
			substituteRefs(v, results)
		case string:
			if !strings.Contains(v, "$result[") {
				continue
			}
			if loc := resultRef.FindStringIndex(v); loc != nil && loc[0] == 0 && loc[1] == len(v) {
				val, _ := resolveRef(v, results)
				m.vals[k] = fromGeneric(val)
				continue
			}
			m.vals[k] = resultRef.ReplaceAllStringFunc(v, func(ref string) string {
				val, complete := resolveRef(ref, results)
				if !complete {
					return ref
				}
				switch val.(type) {
				case map[string]any, []any:
					return ref
				}
				return str(val)
			})
		}
	}
}

// resolveRef walks a reference segment by segment, starting from every
// result so far, and returns the deepest value it reached; complete reports
// whether the whole path resolved. A reference to a key that failed thus
// yields all the results so far, and one to item 5 of a 3-item list the
// whole list.
func resolveRef(ref string, results map[string]any) (any, bool) {
	sm := resultRef.FindStringSubmatch(ref)
	if sm == nil {
		return nil, false
	}
	all := make(map[string]any, len(results))
	for k, v := range results {
		all[k] = v
	}
	var cur any = all
	path := "[" + sm[1] + "]" + sm[2]
	for path != "" {
		end := strings.IndexByte(path, ']')
		seg := path[1:end]
		path = path[end+1:]
		var next any
		ok := false
		switch t := cur.(type) {
		case map[string]any:
			next, ok = t[seg]
		case []any:
			if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(t) {
				next, ok = t[i], true
			}
		}
		if !ok {
			return cur, false
		}
		cur = next
	}
	return cur, true
}

// toGeneric turns a method result into plain decoded JSON for navigation.
func toGeneric(v any) any {
	b, err := marshalJSON(v)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if dec.Decode(&out) != nil {
		return nil
	}
	return out
}

// fromGeneric converts decoded JSON back to parameter form (*omap, string).
func fromGeneric(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := newOmap()
		for k, e := range t {
			m.Set(k, fromGeneric(e))
		}
		return m
	case []any:
		m := newOmap()
		for _, e := range t {
			m.Append(fromGeneric(e))
		}
		return m
	case nil:
		return ""
	default:
		return str(v)
	}
}
