package simulator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLeakyBucket(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	tests := []struct {
		name         string
		burst        int
		drain        float64
		wait         time.Duration
		wantAfter    int // requests allowed after the wait, bucket full before
		wantFromFull int // requests allowed from empty
	}{
		{"standard", 50, 2, time.Second, 2, 50},
		{"enterprise", 250, 5, time.Second, 5, 250},
		{"half second", 50, 2, 500 * time.Millisecond, 1, 50},
		{"fully drained", 50, 2, time.Minute, 50, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newLeakyBucket(tt.burst, tt.drain, clock)
			n := 0
			for b.allow() {
				n++
			}
			assert.Equal(t, tt.wantFromFull, n)
			now = now.Add(tt.wait)
			n = 0
			for b.allow() {
				n++
			}
			assert.Equal(t, tt.wantAfter, n)
		})
	}
	t.Run("disabled", func(t *testing.T) {
		b := newLeakyBucket(0, 0, clock)
		for range 1000 {
			require.True(t, b.allow())
		}
	})
}

func TestRateLimitOverHTTP(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	p.SetRateLimit(5, 0.001)
	for i := range 5 {
		require.Equal(t, http.StatusOK, callJSON(t, p, "profile", tok.AccessToken, nil).Status, "request %d", i)
	}
	r := callJSON(t, p, "profile", tok.AccessToken, nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.Status)
	assert.Equal(t, "QUERY_LIMIT_EXCEEDED", r.errCode())
	assert.Equal(t, "Too many requests", r.errDesc())
	// Injected faults bypass the limiter.
	p.InjectFault(Fault{Method: "profile", Status: 500, Code: "INTERNAL_SERVER_ERROR"})
	assert.Equal(t, http.StatusInternalServerError, callJSON(t, p, "profile", tok.AccessToken, nil).Status)
}

func TestBatchCountsAsOneRequest(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	p.SetRateLimit(2, 0.001)
	cmd := map[string]any{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		cmd[k] = "profile"
	}
	r := callJSON(t, p, "batch", tok.AccessToken, map[string]any{"cmd": cmd})
	require.Equal(t, http.StatusOK, r.Status)
	assert.Len(t, r.Body["result"].(map[string]any)["result"], 5)
	assert.Equal(t, http.StatusOK, callJSON(t, p, "profile", tok.AccessToken, nil).Status)
	assert.Equal(t, http.StatusServiceUnavailable, callJSON(t, p, "profile", tok.AccessToken, nil).Status)
}

func TestFaults(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	body := `{"id":1,"auth":"` + tok.AccessToken + `"}`
	post := func(ctx context.Context, client *http.Client) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.RESTEndpoint()+"crm.lead.contact.items.delete", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		return client.Do(req)
	}

	t.Run("status and code", func(t *testing.T) {
		p.InjectFault(Fault{Method: "crm.lead.contact.items.delete", Times: 2, Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"})
		for range 2 {
			resp, err := post(t.Context(), testClient)
			require.NoError(t, err)
			r := decodeResp(t, resp)
			assert.Equal(t, 503, r.Status)
			assert.Equal(t, "QUERY_LIMIT_EXCEEDED", r.errCode())
		}
		assert.Len(t, p.LeadContacts(1), 3, "faulted calls did not run")
		calls := p.CallsTo("crm.lead.contact.items.delete")
		assert.Equal(t, "QUERY_LIMIT_EXCEEDED", calls[len(calls)-1].Error)
	})
	t.Run("raw HTML body", func(t *testing.T) {
		p.InjectFault(Fault{Status: 502, RawBody: "<html><body>Bad Gateway</body></html>"})
		resp, err := post(t.Context(), testClient)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		assert.Equal(t, 502, resp.StatusCode)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Equal(t, "<html><body>Bad Gateway</body></html>", string(raw))
	})
	t.Run("hang until client timeout", func(t *testing.T) {
		p.InjectFault(Fault{Method: "crm.lead.contact.items.delete", Hang: true})
		client := &http.Client{Timeout: 200 * time.Millisecond}
		start := time.Now()
		_, err := post(t.Context(), client)
		require.Error(t, err)
		var ne interface{ Timeout() bool }
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "%v", err)
		assert.Less(t, time.Since(start), 2*time.Second)
	})
	t.Run("close connection", func(t *testing.T) {
		p.InjectFault(Fault{Method: "crm.lead.contact.items.delete", CloseConnection: true})
		_, err := post(t.Context(), &http.Client{Transport: &http.Transport{DisableKeepAlives: true}})
		require.Error(t, err)
	})
	t.Run("delay only then normal", func(t *testing.T) {
		p.InjectFault(Fault{Method: "profile", Delay: 100 * time.Millisecond})
		start := time.Now()
		r := callJSON(t, p, "profile", tok.AccessToken, nil)
		assert.Equal(t, http.StatusOK, r.Status)
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	})
	t.Run("sub-call fault inside batch", func(t *testing.T) {
		p.InjectFault(Fault{Method: "crm.lead.get", Status: 500, Code: "INTERNAL_SERVER_ERROR", Description: "boom"})
		r := callJSON(t, p, "batch", tok.AccessToken, map[string]any{"cmd": map[string]any{"a": "profile", "b": "crm.lead.get?id=1"}})
		require.Equal(t, http.StatusOK, r.Status)
		errs := r.Body["result"].(map[string]any)["result_error"].(map[string]any)
		assert.Equal(t, map[string]any{"error": "INTERNAL_SERVER_ERROR", "error_description": "boom"}, errs["b"])
	})
	t.Run("batch fault hits the batch request", func(t *testing.T) {
		p.InjectFault(Fault{Method: "batch", Status: 500, RawBody: "oops"})
		resp, err := testClient.Post(p.RESTEndpoint()+"batch", "application/json", bytes.NewReader([]byte(`{"cmd":{"a":"profile"},"auth":"`+tok.AccessToken+`"}`)))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 500, resp.StatusCode)
	})
	t.Run("no faults left", func(t *testing.T) {
		resp, err := post(t.Context(), testClient)
		require.NoError(t, err)
		assert.Equal(t, 200, decodeResp(t, resp).Status)
	})
}

// TestPortalBucketIsBitrix24s: a portal's request-intensity limit is
// Bitrix24's leaky bucket for its plan (limits.md: 50 at once, drained
// 2/s; Enterprise 250 and 5/s), and the request past it gets the recorded
// 503 QUERY_LIMIT_EXCEEDED (rest_query_limit_exceeded.json, held to the
// recording by TestSimulatorRESTErrorsAreAsRecorded).
func TestPortalBucketIsBitrix24s(t *testing.T) {
	s := newTestSim(t)
	for _, tc := range []struct {
		enterprise bool
		burst      int
		drain      float64
	}{{false, 50, 2}, {true, 250, 5}} {
		p, err := s.AddPortal(PortalOptions{Seed: true, Enterprise: tc.enterprise})
		require.NoError(t, err)
		tok := mustInstall(t, p)
		s.mu.Lock()
		assert.Equal(t, tc.burst, p.bucket.burst)
		assert.InDelta(t, tc.drain, p.bucket.drain, 1e-9)
		// Empty the bucket's history, then fill it but for one request:
		// the portal takes that one, and refuses the next. (Draining is
		// TestLeakyBucket's; slowed here so a slow machine cannot drain
		// room between the two requests.)
		p.bucket.level, p.bucket.drain = 0, 1e-6
		for range tc.burst - 1 {
			require.True(t, p.bucket.allow())
		}
		s.mu.Unlock()
		require.Equal(t, http.StatusOK, callJSON(t, p, "profile", tok.AccessToken, nil).Status, "the last of the burst")
		r := callJSON(t, p, "profile", tok.AccessToken, nil)
		assert.Equal(t, http.StatusServiceUnavailable, r.Status)
		assert.Equal(t, "QUERY_LIMIT_EXCEEDED", r.errCode())
		assert.Equal(t, "Too many requests", r.errDesc())
	}
}
