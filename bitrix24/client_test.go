package bitrix24

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/b24apps/leadcontacts/secret"
)

// fakePortal answers every request with the given status and body and
// records what it received. Most tests of the client run against the
// portal simulator (handlers and e2e); these pin down wire-level edge
// cases the simulator has no reason to produce.
func fakePortal(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int32, *[]map[string]any) {
	t.Helper()
	var n atomic.Int32
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		var m map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		m["_path"] = r.URL.Path
		m["_query"] = r.URL.RawQuery
		m["_ct"] = r.Header.Get("Content-Type")
		got = append(got, m)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n, &got
}

// hangingPortal returns the REST endpoint of a server that never answers:
// each request waits until the client gives up or the test ends.
func hangingPortal(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) }) // runs first, so that Close does not wait
	return srv.URL + "/rest/"
}

// newTestClient has no outbound limit (TestPortalLimiter covers it), so
// wire-level tests do not wait for it.
func newTestClient() *Client {
	return New(Options{HTTPClient: NewHTTPClient(true), Backoff: func(int) time.Duration { return time.Millisecond }, PortalRate: rate.Inf})
}

func TestCallSendsTokenInJSONBodyNeverURL(t *testing.T) {
	srv, _, got := fakePortal(t, 200, `{"result":true,"time":{"start":1}}`)
	var ok bool
	err := newTestClient().Call(context.Background(), srv.URL+"/rest/", secret.New("tok-123"), "crm.lead.contact.items.delete", map[string]any{"id": 7}, &ok)
	require.NoError(t, err)
	assert.True(t, ok)
	req := (*got)[0]
	assert.Equal(t, "/rest/crm.lead.contact.items.delete", req["_path"])
	assert.Empty(t, req["_query"])
	assert.Equal(t, "application/json", req["_ct"])
	assert.Equal(t, "tok-123", req["auth"])
	assert.EqualValues(t, 7, req["id"])
}

func TestCallErrors(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		body     string
		sentinel error
		attempts int32
	}{
		{"expired token", 401, `{"error":"expired_token","error_description":"The access token provided has expired."}`, ErrExpiredToken, 1},
		{"access denied", 403, `{"error":"ACCESS_DENIED","error_description":"Access denied."}`, ErrAccessDenied, 1},
		{"not found 400", 400, `{"error":"NOT_FOUND","error_description":"Not found."}`, ErrNotFound, 1},
		{"empty code not found", 400, `{"error":"","error_description":"Not found"}`, ErrNotFound, 1},
		{"empty code access denied", 403, `{"error":"","error_description":"Access denied"}`, ErrAccessDenied, 1},
		{"lower case code", 503, `{"error":"query_limit_exceeded","error_description":"Too many requests"}`, ErrQueryLimitExceeded, 3},
		{"overload not retried", 503, `{"error":"OVERLOAD_LIMIT","error_description":""}`, ErrOverloadLimit, 1},
		{"operation time limit", 429, `{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit."}`, ErrOperationTimeLimit, 1},
		{"html page", 502, `<html><body>Bad gateway</body></html>`, ErrBadResponse, 1},
		{"truncated json", 200, `{"result":tr`, ErrBadResponse, 1},
		{"error with 200", 200, `{"error":"ACCESS_DENIED","error_description":"x"}`, ErrAccessDenied, 1},
		{"no result", 200, `{"time":{}}`, ErrBadResponse, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, n, _ := fakePortal(t, tc.status, tc.body)
			err := newTestClient().Call(context.Background(), srv.URL+"/rest/", secret.New("sentinel-token"), "m", nil, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.sentinel)
			assert.Equal(t, tc.attempts, n.Load())
			assert.NotContains(t, err.Error(), "sentinel-token")
		})
	}
}

func TestQueryLimitRetriedThenSucceeds(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			w.WriteHeader(503)
			_, _ = io.WriteString(w, `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`)
			return
		}
		_, _ = io.WriteString(w, `{"result":true}`)
	}))
	defer srv.Close()
	var ok bool
	require.NoError(t, newTestClient().Call(context.Background(), srv.URL+"/rest/", secret.New("t"), "m", nil, &ok))
	assert.True(t, ok)
	assert.EqualValues(t, 3, n.Load())
}

func TestRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer evil.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/rest/m", http.StatusFound)
	}))
	defer srv.Close()
	err := newTestClient().Call(context.Background(), srv.URL+"/rest/", secret.New("t"), "m", nil, nil)
	require.ErrorIs(t, err, ErrMoved)
	var me *MovedError
	require.True(t, errors.As(err, &me))
	assert.Equal(t, evil.URL+"/rest/m", me.Location)
	assert.Zero(t, hits.Load(), "the token must never reach the redirect target")
}

func TestResponseSizeCapped(t *testing.T) {
	srv, _, _ := fakePortal(t, 200, `{"result":"`+strings.Repeat("x", 2<<20)+`"}`)
	c := New(Options{HTTPClient: NewHTTPClient(true), MaxResponseBytes: 1 << 20})
	err := c.Call(context.Background(), srv.URL+"/rest/", secret.New("t"), "m", nil, nil)
	assert.ErrorIs(t, err, ErrBadResponse)
}

func TestTimeoutIsUnreachable(t *testing.T) {
	endpoint := hangingPortal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := newTestClient().Call(ctx, endpoint, secret.New("t"), "m", nil, nil)
	assert.ErrorIs(t, err, ErrUnreachable)
	assert.True(t, Ambiguous(err))
}

// F6: when the HTTP client's own timeout fires, the error (which Go builds
// from the request line) carries no secret, because the token travels in
// the body and never in the URL.
func TestClientTimeoutErrorsCarryNoSecret(t *testing.T) {
	endpoint := hangingPortal(t)
	hc := NewHTTPClient(true)
	hc.Timeout = 150 * time.Millisecond
	c := New(Options{HTTPClient: hc, Backoff: func(int) time.Duration { return time.Millisecond }})
	const token = "sentinel-token-timeout-4242"
	err := c.Call(context.Background(), endpoint, secret.New(token), "crm.lead.contact.items.delete", map[string]any{"id": 5}, nil)
	require.ErrorIs(t, err, ErrUnreachable)
	assert.NotContains(t, err.Error(), token)
	_, err = c.Batch(context.Background(), endpoint, secret.New(token), true, []Cmd{{Key: "a", Method: "profile"}})
	require.ErrorIs(t, err, ErrUnreachable)
	assert.NotContains(t, err.Error(), token)
}

func TestPrivateAddressesRefused(t *testing.T) {
	srv, n, _ := fakePortal(t, 200, `{"result":true}`)
	c := New(Options{HTTPClient: NewHTTPClient(false)})
	err := c.Call(context.Background(), srv.URL+"/rest/", secret.New("t"), "m", nil, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrForbiddenAddress)
	assert.Zero(t, n.Load())
}

func TestBatchDecodesEmptySectionsAsArrays(t *testing.T) {
	body := `{"result":{"result":{"a":{"ID":"5"}},"result_error":{"b":{"error":"","error_description":"Not found"}},"result_total":[],"result_next":[],"result_time":[]},"time":{}}`
	srv, _, got := fakePortal(t, 200, body)
	res, err := newTestClient().Batch(context.Background(), srv.URL+"/rest/", secret.New("t"), false, []Cmd{
		{Key: "a", Method: "crm.lead.get", Params: map[string][]string{"id": {"5"}}},
		{Key: "b", Method: "crm.contact.get", Params: map[string][]string{"id": {"$result[a][ID]"}}},
	})
	require.NoError(t, err)
	var lead struct {
		ID ID `json:"ID"`
	}
	require.NoError(t, res.Decode("a", &lead))
	assert.EqualValues(t, 5, lead.ID)
	assert.ErrorIs(t, res.Err("b"), ErrNotFound)
	var be *Error
	require.ErrorAs(t, res.Err("b"), &be)
	assert.Equal(t, "crm.contact.get", be.Method)
	cmd := (*got)[0]["cmd"].(map[string]any)
	assert.Equal(t, "crm.lead.get?id=5", cmd["a"])
	assert.Equal(t, "crm.contact.get?id=%24result%5Ba%5D%5BID%5D", cmd["b"])
	assert.EqualValues(t, 0, (*got)[0]["halt"])
}

func TestBatchListSections(t *testing.T) {
	res, _, err := decodeBatch(json.RawMessage(`{"result":[true,{"x":1}],"result_error":[],"result_total":[],"result_next":[]}`))
	require.NoError(t, err)
	assert.Len(t, res.Results, 2)
	assert.Empty(t, res.Errors)
}

func TestIDDecoding(t *testing.T) {
	for in, want := range map[string]int64{`12`: 12, `"12"`: 12, `null`: 0, `""`: 0} {
		var id ID
		require.NoError(t, json.Unmarshal([]byte(in), &id), in)
		assert.Equal(t, want, int64(id), in)
	}
	for _, in := range []string{`"-1"`, `"1e3"`, `"abc"`, `1.5`, `{}`} {
		var id ID
		assert.Error(t, json.Unmarshal([]byte(in), &id), in)
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	good := map[string][2]string{
		"https://x.bitrix24.com/rest/":       {"https://x.bitrix24.com/rest/", "x.bitrix24.com"},
		"https://X.Bitrix24.COM./rest":       {"https://x.bitrix24.com/rest/", "x.bitrix24.com"},
		"https://crm.example.com:8443/rest/": {"https://crm.example.com:8443/rest/", "crm.example.com:8443"},
		"https://xn--80ak6aa92e.com/rest/":   {"https://xn--80ak6aa92e.com/rest/", "xn--80ak6aa92e.com"},
	}
	for in, want := range good {
		ep, host, err := NormalizeEndpoint(in, false)
		require.NoError(t, err, in)
		assert.Equal(t, want[0], ep, in)
		assert.Equal(t, want[1], host, in)
	}
	bad := []string{
		"http://x.bitrix24.com/rest/", "https://x.bitrix24.com/", "https://x.bitrix24.com/rest/?a=1",
		"https://user@x.bitrix24.com/rest/", "https://127.0.0.1/rest/", "https://[::1]/rest/",
		"https://169.254.169.254/rest/", "https://10.0.0.5:8080/rest/", "https://localhost/rest/",
		"https://пример.рф/rest/", "javascript:alert(1)", "", "https://x..com/rest/", "https://x.com/rest/#f",
	}
	for _, in := range bad {
		_, _, err := NormalizeEndpoint(in, false)
		assert.ErrorIs(t, err, ErrBadEndpoint, in)
	}
	ep, host, err := NormalizeEndpoint("http://127.0.0.1:9000/rest/", true)
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9000/rest/", ep)
	assert.Equal(t, "127.0.0.1:9000", host)
}

func TestBatchKeepsCommandOrder(t *testing.T) {
	var raw []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ = io.ReadAll(r.Body)
		_, _ = io.WriteString(w, `{"result":{"result":[],"result_error":[],"result_total":[],"result_next":[]}}`)
	}))
	defer srv.Close()
	_, err := newTestClient().Batch(context.Background(), srv.URL+"/rest/", secret.New("t"), true, []Cmd{
		{Key: "zeta", Method: "a"}, {Key: "items", Method: "b"}, {Key: "c0", Method: "c"},
	})
	require.NoError(t, err)
	s := string(raw)
	assert.Less(t, strings.Index(s, `"zeta"`), strings.Index(s, `"items"`))
	assert.Less(t, strings.Index(s, `"items"`), strings.Index(s, `"c0"`))
	assert.Contains(t, s, `"halt":1`)
}
