package bitrix24

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/b24apps/leadcontacts/secret"
)

// fakeTransport answers in memory, so the client runs inside a synctest
// bubble (no network, fake clock) and the tests see exact times. answer
// gets the 1-based attempt number per URL path and the request.
type fakeTransport struct {
	mu       sync.Mutex
	attempts map[string]int
	times    []time.Time // when each request arrived (bubble clock)
	answer   func(n int, r *http.Request) (int, string)
}

func (f *fakeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	if f.attempts == nil {
		f.attempts = map[string]int{}
	}
	f.attempts[r.URL.Host+r.URL.Path]++
	n := f.attempts[r.URL.Host+r.URL.Path]
	f.times = append(f.times, time.Now())
	f.mu.Unlock()
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	status, body := f.answer(n, r)
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    r,
	}, nil
}

func (f *fakeTransport) requests() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

func fakeClient(f *fakeTransport, o Options) *Client {
	o.HTTPClient = &http.Client{Transport: f}
	return New(o)
}

const (
	qle = `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`
	otl = `{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit."}`
)

// The default backoff: exponential with full jitter, a random wait in
// [0, min(4 s, 500 ms·2^(n-1))). Full jitter spreads the retries of many
// clients hit by the same limit; the cap keeps one retry inside a click.
func TestFullJitterSchedule(t *testing.T) {
	backoff := FullJitter(500*time.Millisecond, 4*time.Second)
	windows := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, w := range windows {
		n := i + 1
		var sum time.Duration
		seen := map[time.Duration]bool{}
		const samples = 2000
		for range samples {
			d := backoff(n)
			require.GreaterOrEqual(t, d, time.Duration(0), "retry %d", n)
			require.Less(t, d, w, "retry %d", n)
			sum += d
			seen[d] = true
		}
		// Uniform on [0, w): the mean is w/2 (σ of the mean ≈ w/155 here).
		assert.InDelta(t, float64(w/2), float64(sum/samples), float64(w/10), "retry %d", n)
		assert.Greater(t, len(seen), samples/2, "retry %d: jittered, not fixed", n)
	}
	// Shifts far past the cap must not overflow into a negative or zero window.
	for _, n := range []int{40, 63, 64, 200} {
		d := backoff(n)
		assert.GreaterOrEqual(t, d, time.Duration(0))
		assert.Less(t, d, 4*time.Second)
	}
}

// H2: QUERY_LIMIT_EXCEEDED twice, then success: three attempts, each retry
// after a jittered wait inside its window, all inside the deadline.
func TestQueryLimitRetriedWithJitteredBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeTransport{answer: func(n int, _ *http.Request) (int, string) {
			if n <= 2 {
				return 503, qle
			}
			return 200, `{"result":true}`
		}}
		c := fakeClient(f, Options{PortalRate: rate.Inf})
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		start := time.Now()
		var ok bool
		require.NoError(t, c.Call(ctx, "https://x.bitrix24.com/rest/", secret.New("t"), "crm.lead.contact.items.delete", nil, &ok))
		assert.True(t, ok)
		at := f.requests()
		require.Len(t, at, 3)
		assert.Equal(t, start, at[0], "the first attempt is not delayed")
		assert.Less(t, at[1].Sub(at[0]), 500*time.Millisecond, "first retry within [0, 500 ms)")
		assert.Less(t, at[2].Sub(at[1]), time.Second, "second retry within [0, 1 s)")
		assert.Less(t, time.Since(start), 1500*time.Millisecond)
	})
}

// H3: QUERY_LIMIT_EXCEEDED forever: at most MaxAttempts requests, then the
// portal's own error (which the tab explains as "busy, try again"), never
// later than the deadline; and no retry is started that cannot finish.
func TestQueryLimitForeverGivesUpWithinTheDeadline(t *testing.T) {
	cases := []struct {
		name      string
		deadline  time.Duration
		backoff   func(int) time.Duration
		wantCalls int
	}{
		{"default backoff", 15 * time.Second, nil, DefaultMaxAttempts},
		{"waits beyond the deadline are not started", 300 * time.Millisecond, func(int) time.Duration { return time.Second }, 1},
		{"deadline ends during the second wait", 1500 * time.Millisecond, func(int) time.Duration { return time.Second }, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeTransport{answer: func(int, *http.Request) (int, string) { return 503, qle }}
				c := fakeClient(f, Options{PortalRate: rate.Inf, Backoff: tc.backoff})
				ctx, cancel := context.WithTimeout(t.Context(), tc.deadline)
				defer cancel()
				start := time.Now()
				err := c.Call(ctx, "https://x.bitrix24.com/rest/", secret.New("t"), "m", nil, nil)
				require.ErrorIs(t, err, ErrQueryLimitExceeded)
				assert.Len(t, f.requests(), tc.wantCalls)
				assert.LessOrEqual(t, time.Since(start), tc.deadline)
				assert.False(t, Ambiguous(err), "refused before running: not ambiguous")
			})
		})
	}
}

// H4, H5: errors that a retry cannot cure, or that a retry makes worse, are
// never retried.
func TestErrorsThatAreNeverRetried(t *testing.T) {
	cases := []struct {
		status   int
		body     string
		sentinel error
	}{
		{503, `{"error":"OVERLOAD_LIMIT","error_description":""}`, ErrOverloadLimit},
		{500, `{"error":"PORTAL_DELETED","error_description":"Portal was deleted"}`, ErrPortalDeleted},
		{429, otl, ErrOperationTimeLimit},
		{500, `{"error":"INTERNAL_SERVER_ERROR","error_description":"boom"}`, ErrInternal},
		{401, `{"error":"expired_token","error_description":""}`, ErrExpiredToken},
	}
	for _, tc := range cases {
		t.Run(tc.sentinel.Error(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeTransport{answer: func(int, *http.Request) (int, string) { return tc.status, tc.body }}
				c := fakeClient(f, Options{PortalRate: rate.Inf})
				err := c.Call(t.Context(), "https://x.bitrix24.com/rest/", secret.New("t"), "m", nil, nil)
				require.ErrorIs(t, err, tc.sentinel)
				assert.Len(t, f.requests(), 1)
			})
		})
	}
	assert.False(t, Ambiguous(&Error{Code: "OVERLOAD_LIMIT", HTTPStatus: 503}))
	assert.False(t, Ambiguous(&Error{Code: "PORTAL_DELETED", HTTPStatus: 500}))
	assert.True(t, Ambiguous(&Error{Code: "INTERNAL_SERVER_ERROR", HTTPStatus: 500}))
	assert.True(t, Ambiguous(&Error{Code: "", Description: "", HTTPStatus: 500}))
}

// OPERATION_TIME_LIMIT: the method stays blocked until the operating_reset_at
// of the last successful answer, refused locally with the same error and no
// request; other methods and other portals go on; then it works again.
func TestOperatingResetAtIsWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reset := time.Now().Add(300 * time.Second).Unix()
		blocked := true
		f := &fakeTransport{answer: func(n int, r *http.Request) (int, string) {
			if strings.HasSuffix(r.URL.Path, "/crm.lead.contact.items.delete") && n > 1 && blocked {
				return 429, otl
			}
			return 200, fmt.Sprintf(`{"result":true,"time":{"start":1,"operating":412.5,"operating_reset_at":%d}}`, reset)
		}}
		c := fakeClient(f, Options{PortalRate: rate.Inf})
		const a, b = "https://a.bitrix24.com/rest/", "https://b.bitrix24.com/rest/"
		call := func(endpoint, method string) error {
			return c.Call(t.Context(), endpoint, secret.New("t"), method, nil, nil)
		}
		require.NoError(t, call(a, "crm.lead.contact.items.delete")) // remembers the reset time
		require.ErrorIs(t, call(a, "crm.lead.contact.items.delete"), ErrOperationTimeLimit)
		require.Len(t, f.requests(), 2)

		for _, wait := range []time.Duration{0, time.Minute, 299 * time.Second} {
			time.Sleep(wait - time.Since(time.Unix(reset-300, 0)))
			err := call(a, "crm.lead.contact.items.delete")
			require.ErrorIs(t, err, ErrOperationTimeLimit, "still blocked after %v", wait)
			var be *Error
			require.ErrorAs(t, err, &be)
			assert.Equal(t, http.StatusTooManyRequests, be.HTTPStatus)
			assert.Len(t, f.requests(), 2, "refused without a request")
		}
		// A halting batch that contains the blocked method is refused too.
		_, err := c.Batch(t.Context(), a, secret.New("t"), true, []Cmd{
			{Key: "before", Method: "crm.lead.contact.items.get"},
			{Key: "delete", Method: "crm.lead.contact.items.delete"},
		})
		require.ErrorIs(t, err, ErrOperationTimeLimit)
		assert.Len(t, f.requests(), 2)
		// Other methods, and the same method on another portal, are fine.
		require.NoError(t, call(a, "crm.lead.contact.items.get"))
		require.NoError(t, call(b, "crm.lead.contact.items.delete"))

		blocked = false
		time.Sleep(time.Until(time.Unix(reset, 0)) + time.Second)
		require.NoError(t, call(a, "crm.lead.contact.items.delete"), "usable again after operating_reset_at")
	})
}

// Without a known operating_reset_at, a blocked method waits the documented
// ten minutes; a block reported inside a batch blocks that sub-call's method.
func TestOperatingBlockWithoutResetTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeTransport{answer: func(n int, r *http.Request) (int, string) {
			if n == 1 {
				return 200, `{"result":{"result":{"before":[]},"result_error":{"delete":{"error":"OPERATION_TIME_LIMIT","error_description":"blocked"}},"result_total":[],"result_next":[],"result_time":[]}}`
			}
			return 200, `{"result":true}`
		}}
		c := fakeClient(f, Options{PortalRate: rate.Inf})
		const ep = "https://a.bitrix24.com/rest/"
		res, err := c.Batch(t.Context(), ep, secret.New("t"), false, []Cmd{
			{Key: "before", Method: "crm.lead.contact.items.get"},
			{Key: "delete", Method: "crm.lead.contact.items.delete"},
		})
		require.NoError(t, err)
		require.ErrorIs(t, res.Err("delete"), ErrOperationTimeLimit)

		time.Sleep(DefaultOperatingBlock - time.Second)
		err = c.Call(t.Context(), ep, secret.New("t"), "crm.lead.contact.items.delete", nil, nil)
		require.ErrorIs(t, err, ErrOperationTimeLimit)
		assert.Len(t, f.requests(), 1)
		time.Sleep(2 * time.Second)
		require.NoError(t, c.Call(t.Context(), ep, secret.New("t"), "crm.lead.contact.items.delete", nil, nil))
	})
}

func TestTimeBlockIsDecodedLeniently(t *testing.T) {
	for in, want := range map[string]int64{
		`{"operating_reset_at":1715092141}`:   1715092141,
		`{"operating_reset_at":1715092141.0}`: 1715092141,
		`{"operating_reset_at":"1715092141"}`: 1715092141,
		`{"operating_reset_at":null}`:         0,
		`{"operating_reset_at":{}}`:           0,
		`[]`:                                  0,
	} {
		var tm Time
		require.NoError(t, json.Unmarshal([]byte(in), &tm), in)
		assert.Equal(t, want, tm.OperatingResetAt, in)
	}
	// A good result with an odd time block stays a good result.
	srv, _, _ := fakePortal(t, 200, `{"result":true,"time":{"operating_reset_at":"soon"}}`)
	var ok bool
	require.NoError(t, newTestClient().Call(t.Context(), srv.URL+"/rest/", secret.New("t"), "m", nil, &ok))
	assert.True(t, ok)
}

// A12, H12: a redirect is followed only into a Bitrix24 cloud zone over
// https (plus loopback when development allows http), and only to a REST
// endpoint.
func TestMovedEndpoint(t *testing.T) {
	moved := func(loc string) error { return &MovedError{Method: "batch", HTTPStatus: 302, Location: loc} }
	cases := []struct {
		location  string
		allowHTTP bool
		endpoint  string // "" = refused
	}{
		{"https://new-name.bitrix24.com/rest/batch", false, "https://new-name.bitrix24.com/rest/"},
		{"https://NEW.Bitrix24.DE/rest/crm.lead.get.json?x=1", false, "https://new.bitrix24.de/rest/"},
		{"https://b24-x1.bitrix24.com.br/rest/batch", false, "https://b24-x1.bitrix24.com.br/rest/"},
		{"https://evil.example/rest/batch", false, ""},
		{"https://x.bitrix24.com.evil.example/rest/batch", false, ""},
		{"https://bitrix24.com/rest/batch", false, ""},
		{"https://a.b.bitrix24.com/rest/batch", false, ""},
		{"https://x.bitrix24.com@evil.example/rest/batch", false, ""},
		{"https://user@x.bitrix24.com/rest/batch", false, ""},
		{"http://x.bitrix24.com/rest/batch", false, ""},
		{"https://x.bitrix24.com:8443/rest/batch", false, ""},
		{"https://x.bitrix24.com/other/batch", false, ""},
		{"/rest/batch", false, ""},
		{"https://127.0.0.1/rest/batch", false, ""},
		{"http://127.0.0.1:9999/rest/batch", true, "http://127.0.0.1:9999/rest/"},
		{"http://localhost:9999/rest/batch", true, "http://localhost:9999/rest/"},
		{"http://10.0.0.5/rest/batch", true, ""},
		{"http://evil.example/rest/batch", true, ""},
	}
	for _, tc := range cases {
		ep, _, err := MovedEndpoint(moved(tc.location), tc.allowHTTP)
		if tc.endpoint == "" {
			assert.ErrorIs(t, err, ErrMoveRefused, tc.location)
			continue
		}
		require.NoError(t, err, tc.location)
		assert.Equal(t, tc.endpoint, ep, tc.location)
	}
	_, _, err := MovedEndpoint(errors.New("x"), true)
	assert.Error(t, err)
}

// H11: a body that trickles in never holds a request past its deadline,
// and leaves no goroutine behind (TestMain runs goleak).
func TestTricklingBodyTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"result":`)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
				_, _ = io.WriteString(w, " ")
				w.(http.Flusher).Flush()
			}
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := newTestClient().Call(ctx, srv.URL+"/rest/", secret.New("t"), "m", nil, nil)
	require.ErrorIs(t, err, ErrUnreachable)
	assert.True(t, Ambiguous(err))
	assert.Less(t, time.Since(start), 2*time.Second)
}

// H13: a portal with a certificate nobody vouches for is an error; the
// client has no InsecureSkipVerify.
func TestSelfSignedCertificateIsRefused(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is the point
	srv.StartTLS()
	defer srv.Close()
	err := newTestClient().Call(t.Context(), srv.URL+"/rest/", secret.New("tls-sentinel"), "m", nil, nil)
	require.ErrorIs(t, err, ErrUnreachable)
	assert.Contains(t, err.Error(), "certificate")
	assert.NotContains(t, err.Error(), "tls-sentinel")
	assert.Zero(t, hits.Load())
	tr := NewHTTPClient(false).Transport.(*http.Transport)
	assert.True(t, tr.TLSClientConfig == nil || !tr.TLSClientConfig.InsecureSkipVerify)
}
