package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/reqid"
	"github.com/b24apps/leadcontacts/simulator"
)

// logLines parses the app's output: every line must be a JSON object.
func logLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "a log line that is not JSON: %q", l)
		lines = append(lines, m)
	}
	return lines
}

func get(t *testing.T, target string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := appClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// /readyz says 200 while the database answers; after SIGTERM it says 503
// for SHUTDOWN_DRAIN_SECONDS while the app still serves (so the balancer
// moves traffic away before the port closes), then the app stops cleanly.
// /healthz says the process lives throughout.
func TestReadyzDrainsBeforeShutdown(t *testing.T) {
	a := newAppProc(t)
	a.env["SHUTDOWN_DRAIN_SECONDS"] = "2"
	a.start()
	resp, body := get(t, a.base+"/readyz")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "ready", body)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- a.stop() }()
	require.Eventually(t, func() bool {
		resp, _ := get(t, a.base+"/readyz")
		return resp.StatusCode == http.StatusServiceUnavailable
	}, time.Second, 20*time.Millisecond, "readyz answers 503 once draining")
	resp, body = get(t, a.base+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "draining", body)
	resp, _ = get(t, a.base+"/healthz")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the process lives while it drains")
	resp, _ = get(t, a.base+"/install")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "and still serves pages")
	assert.True(t, resp.Close, "without keep-alive, so clients reconnect elsewhere")

	require.NoError(t, <-stopped)
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "it drained for SHUTDOWN_DRAIN_SECONDS")
	_, err := http.Get(a.base + "/healthz")
	assert.Error(t, err, "the port is closed after the drain")
	assert.Contains(t, a.output(), `"msg":"draining"`)
}

// One request id per inbound request: it is echoed as X-Request-Id and is
// on every line the request causes — the REST exchanges with the portal
// and the request's own line — and on no other request's lines. An id
// sent by the client is ignored unless the peer is a trusted proxy and the
// id is well formed. A 404's line carries the path, never the query.
func TestRequestIDOnEveryLineItCauses(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		name := map[bool]string{false: "untrusted peer", true: "trusted proxy"}[trusted]
		t.Run(name, func(t *testing.T) {
			a := newAppProc(t)
			if trusted {
				a.env["TRUSTED_PROXIES"] = "127.0.0.1/32"
			}
			a.start()
			p, err := a.sim.AddPortal(simulator.PortalOptions{Seed: true})
			require.NoError(t, err)
			a.installOn(p)

			// Open the tab with a client-chosen id.
			f, err := p.OpenLeadTab(simulator.SeedSales, simulator.SeedLeadThreeContacts, "en")
			require.NoError(t, err)
			const sent = "client-chosen-id-42"
			req, err := http.NewRequest(http.MethodPost, f.URL, strings.NewReader(f.Form.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.Header.Set("Origin", p.URL())
			req.Header.Set(reqid.Header, sent)
			resp, err := appClient.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			id := resp.Header.Get(reqid.Header)
			require.True(t, reqid.Valid(id), "echoed id %q", id)
			if trusted {
				assert.Equal(t, sent, id, "a trusted proxy's id is kept")
			} else {
				assert.NotEqual(t, sent, id, "an untrusted client's id is replaced")
			}

			// A malformed id is replaced even from a trusted proxy.
			resp, _ = get(t, a.base+"/install", reqid.Header, "bad id\"with quote")
			assert.NotContains(t, resp.Header.Get(reqid.Header), "bad")
			other := resp.Header.Get(reqid.Header)
			assert.True(t, reqid.Valid(other))
			assert.NotEqual(t, id, other, "each request has its own id")

			// A 404 and a 405 name their path, without the query.
			resp, _ = get(t, a.base+"/no/such/page?token=sentinel-query")
			assert.Equal(t, http.StatusNotFound, resp.StatusCode)
			resp, _ = get(t, a.base+"/events/uninstall?x=sentinel-query")
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

			out := a.output()
			assert.NotContains(t, out, "sentinel-query")
			var mine, rest, httpLines int
			paths := map[string]float64{}
			for _, l := range logLines(t, out) {
				if l["request_id"] == id {
					mine++
					switch l["msg"] {
					case "bitrix24 rest":
						rest++
					case "http":
						httpLines++
						assert.Equal(t, "/placements/lead-tab", l["route"])
					}
				}
				if l["msg"] == "bitrix24 rest" {
					assert.NotEmpty(t, l["request_id"], "a REST line without a request id: %v", l)
				}
				if l["msg"] == "http" {
					assert.NotEmpty(t, l["request_id"], "an http line without a request id: %v", l)
					if l["route"] == "(no route)" {
						p, _ := l["path"].(string)
						paths[p], _ = l["status"].(float64)
					}
				}
			}
			assert.Equal(t, 1, httpLines, "one http line for the tab request")
			assert.GreaterOrEqual(t, rest, 1, "the tab's batch is logged with the tab request's id")
			assert.Equal(t, map[string]float64{"/no/such/page": 404, "/events/uninstall": 405}, paths)
		})
	}
}

// The probes are served by the app as run starts it, and passing probes
// stay out of the log (they come every few seconds). /readyz with the
// database stopped: handlers/health_test.go.
func TestProbesAreServed(t *testing.T) {
	a := newAppProc(t)
	a.start()
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		resp, body := get(t, a.base+path)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, want, body, path)
	}
	assert.NotContains(t, a.output(), `"route":"/readyz"`, "passing probes are not logged")
}
