package bitrix24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"

	"github.com/b24apps/leadcontacts/secret"
)

// MaxBatch is the most sub-calls Bitrix24 accepts in one batch.
const MaxBatch = 50

// Cmd is one sub-call of a batch. Params are encoded the way Bitrix24
// parses sub-calls: a PHP-style query string ("filter[@ID][]=1"). A value
// may reference an earlier result as "$result[key][field]".
type Cmd struct {
	Key    string
	Method string
	Params url.Values
}

// BatchResult holds the per-key outcome of a batch. A key appears in
// Results or in Errors (or in neither, when halt stopped before it).
type BatchResult struct {
	Results map[string]json.RawMessage
	Errors  map[string]*Error
	Total   map[string]int
	Next    map[string]int
}

// Err returns the error of sub-call key, or nil.
func (r *BatchResult) Err(key string) error {
	if e, ok := r.Errors[key]; ok {
		return e
	}
	return nil
}

// Decode unmarshals the result of sub-call key into out. It returns the
// sub-call's error if it failed, and ErrBadResponse if it is missing.
func (r *BatchResult) Decode(key string, out any) error {
	if e, ok := r.Errors[key]; ok {
		return e
	}
	raw, ok := r.Results[key]
	if !ok {
		return fmt.Errorf("bitrix24: batch: no result for %q: %w", key, ErrBadResponse)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("bitrix24: batch: decode %q: %w", key, errors.Join(ErrBadResponse, err))
	}
	return nil
}

// Batch runs up to 50 sub-calls in one HTTP request (one request for the
// portal's rate limiter, one network round trip). With halt, Bitrix24 stops
// at the first failing sub-call. A batch is never retried except when the
// whole request was refused with QUERY_LIMIT_EXCEEDED, which Bitrix24
// guarantees ran nothing.
func (c *Client) Batch(ctx context.Context, endpoint string, token secret.String, halt bool, cmds []Cmd) (*BatchResult, error) {
	if len(cmds) == 0 || len(cmds) > MaxBatch {
		return nil, fmt.Errorf("bitrix24: batch of %d sub-calls (1 to %d allowed)", len(cmds), MaxBatch)
	}
	// Bitrix24 runs sub-calls in the order of the cmd object, and a
	// $result reference only sees earlier ones. Go sorts map keys when it
	// encodes JSON, so the object is written by hand in the caller's order.
	var cmd bytes.Buffer
	cmd.WriteByte('{')
	seen := make(map[string]bool, len(cmds))
	for i, c := range cmds {
		if seen[c.Key] || c.Key == "" {
			return nil, fmt.Errorf("bitrix24: batch key %q empty or repeated", c.Key)
		}
		seen[c.Key] = true
		q := c.Method
		if len(c.Params) > 0 {
			q += "?" + encodeQuery(c.Params)
		}
		k, _ := json.Marshal(c.Key)
		v, _ := json.Marshal(q)
		if i > 0 {
			cmd.WriteByte(',')
		}
		cmd.Write(k)
		cmd.WriteByte(':')
		cmd.Write(v)
	}
	cmd.WriteByte('}')
	h := 0
	if halt {
		h = 1
	}
	raw, err := json.Marshal(struct {
		Halt int             `json:"halt"`
		Cmd  json.RawMessage `json:"cmd"`
		Auth string          `json:"auth"`
	}{h, cmd.Bytes(), token.Reveal()})
	if err != nil {
		return nil, fmt.Errorf("bitrix24: batch: encode: %w", err)
	}
	// With halt, a blocked sub-call stops the batch at that point anyway:
	// refuse it here rather than run the sub-calls before it for nothing.
	// Without halt the other sub-calls are worth their answers, and the
	// blocked one fails on its own.
	methods := []string{"batch"}
	if halt {
		for _, sub := range cmds {
			methods = append(methods, sub.Method)
		}
	}
	// The answer is decoded inside the exchange, so the exchange's report
	// (the REST log line) names the sub-calls that failed.
	var (
		res   *BatchResult
		times map[string]Time
	)
	inspect := func(env *envelope) ([]CmdError, error) {
		var err error
		if res, times, err = decodeBatch(env.Result); err != nil {
			return nil, err
		}
		var failed []CmdError
		for _, sub := range cmds {
			if e, ok := res.Errors[sub.Key]; ok {
				e.Method = sub.Method
				ce := CmdError{Key: sub.Key, Method: sub.Method, Code: e.EffectiveCode()}
				if ce.Code == "" {
					ce.Description = e.Description
				}
				failed = append(failed, ce)
			}
		}
		return failed, nil
	}
	if _, err := c.post(ctx, endpoint, "batch", raw, inspect, methods...); err != nil {
		return nil, err
	}
	host := endpointHost(endpoint)
	for _, sub := range cmds {
		if e, ok := res.Errors[sub.Key]; ok {
			if errors.Is(e, ErrOperationTimeLimit) {
				c.ops.block(host, sub.Method)
			}
		} else if t, ok := times[sub.Key]; ok {
			// Sub-calls count against their own method's operating time.
			c.ops.remember(host, sub.Method, &t)
		}
	}
	return res, nil
}

// encodeQuery is url.Values.Encode with keys in a stable order; brackets
// stay escaped, which PHP's parse_str decodes.
func encodeQuery(v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		for _, val := range v[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(val))
		}
	}
	return b.String()
}

// decodeBatch parses the "result" of a batch response. Bitrix24 sends an
// empty section as [] rather than {}, so every section is decoded
// tolerantly. It also returns result_time per key, best effort: the
// timing section is informational, so an odd one is ignored rather than
// failing an answer whose results are fine.
func decodeBatch(raw json.RawMessage) (*BatchResult, map[string]Time, error) {
	var parts struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"result_error"`
		Total  json.RawMessage `json:"result_total"`
		Next   json.RawMessage `json:"result_next"`
		Time   json.RawMessage `json:"result_time"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, nil, fmt.Errorf("bitrix24: batch: %w", errors.Join(ErrBadResponse, err))
	}
	out := &BatchResult{Errors: map[string]*Error{}}
	var err error
	if out.Results, err = section[json.RawMessage](parts.Result); err != nil {
		return nil, nil, err
	}
	errs, err := section[struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}](parts.Error)
	if err != nil {
		return nil, nil, err
	}
	for k, e := range errs {
		out.Errors[k] = &Error{Code: e.Error, Description: e.Description, Method: "batch:" + k}
	}
	if out.Total, err = section[int](parts.Total); err != nil {
		return nil, nil, err
	}
	if out.Next, err = section[int](parts.Next); err != nil {
		return nil, nil, err
	}
	times, _ := section[Time](parts.Time)
	return out, times, nil
}

// section decodes a batch section that is either an object keyed by
// sub-call key, or an array: [] when empty, and a list indexed by position
// when the cmd was sent as a list.
func section[T any](raw json.RawMessage) (map[string]T, error) {
	out := map[string]T{}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return out, nil
	}
	if raw[0] == '[' {
		var list []T
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("bitrix24: batch section: %w", errors.Join(ErrBadResponse, err))
		}
		for i, v := range list {
			out[fmt.Sprint(i)] = v
		}
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("bitrix24: batch section: %w", errors.Join(ErrBadResponse, err))
	}
	return out, nil
}
