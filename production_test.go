package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/reqid"
	"github.com/b24apps/leadcontacts/simulator"
)

// caddyfile is the proxy of docs/deploy.md, on test ports: TLS from
// Caddy's internal CA, every request relayed to the app, and an
// X-Request-Id of Caddy's own on each (replacing any the client sent).
const caddyfile = `{
	admin off
	skip_install_trust
	auto_https disable_redirects
	http_port %[1]d
	https_port %[2]d
	storage file_system %[3]s
}

localhost:%[2]d {
	tls internal
	reverse_proxy %[4]s {
		header_up X-Request-Id {http.request.uuid}
	}
}
`

// TestHTTPSBehindCaddy runs the app as in production behind Caddy (Debian's
// caddy package, its internal CA, TLS verified against that root only), at
// an https APP_BASE_URL, with TRUSTED_PROXIES naming the proxy, and goes
// through install → tab → removal → uninstall event, all through the
// proxy. The client connects from 127.0.0.2, the proxy from 127.0.0.1, so
// the log shows whose address counts: through the proxy the client's (even
// when it sends a forged X-Forwarded-For, which Caddy replaces); straight
// to the app, the peer's, whatever X-Forwarded-For it claims.
func TestHTTPSBehindCaddy(t *testing.T) {
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("caddy is not installed; CI must run the HTTPS proxy test (.ci/run installs Debian's caddy)")
		}
		t.Skip("caddy is not installed (apt-get install caddy); skipping the HTTPS proxy test")
	}
	appAddr, httpPort, httpsPort := freeAddr(t), freePort(t), freePort(t)
	base := fmt.Sprintf("https://localhost:%d", httpsPort)
	dir := t.TempDir()

	// Caddy first: its root certificate is what every client here trusts.
	conf := filepath.Join(dir, "Caddyfile")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, caddyfile, httpPort, httpsPort, filepath.Join(dir, "caddy"), appAddr), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, caddy, "run", "--config", conf, "--adapter", "caddyfile") // #nosec G204 -- the test's own caddy binary and file
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var caddyOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &caddyOut, &caddyOut
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("caddy output:\n%s", caddyOut.String())
		}
	})
	rootFile := filepath.Join(dir, "caddy", "pki", "authorities", "local", "root.crt")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(rootFile); err == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("caddy exited: %v", err)
		default:
		}
		require.True(t, time.Now().Before(deadline), "caddy created no root certificate")
	}
	rootPEM, err := os.ReadFile(rootFile) // #nosec G304 -- the test's temporary directory
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(rootPEM))
	client := fromAddr("127.0.0.2", roots)

	// The app, with the simulator around it; the simulator's event POSTs
	// go through the proxy too, trusting the same root.
	a := newAppProcAt(t, appAddr, base, client.Transport)
	a.env["TRUSTED_PROXIES"] = "127.0.0.1/32"
	sim := a.sim
	a.start()
	require.Eventually(t, func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "the app does not answer through caddy")

	// A forged X-Forwarded-For and X-Request-Id through the proxy.
	forged := []string{"X-Forwarded-For", "203.0.113.7", reqid.Header, "forged-request-id"}
	p, err := sim.AddPortal(simulator.PortalOptions{Seed: true})
	require.NoError(t, err)
	f, err := p.BeginInstall(simulator.SeedAdmin)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(f.URL, base+"/"), "the install frame goes to the proxy: %s", f.URL)
	pg, err := postPage(client, f.URL, f.Form, append(forged, "Sec-Fetch-Site", "cross-site", "Origin", p.URL())...)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, pg.status, pg.body)
	p.FinishInstall()

	f, err = p.OpenLeadTab(simulator.SeedSales, simulator.SeedLeadThreeContacts, "en")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(f.URL, base+"/"), "the tab is bound under the https base: %s", f.URL)
	tab, err := postPage(client, f.URL, f.Form, append(forged, "Sec-Fetch-Site", "cross-site", "Origin", p.URL())...)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	require.Equal(t, 3, tab.doc.Find(".contact").Length(), tab.body)

	form := tab.doc.Find("#remove-form")
	action, ok := form.Attr("data-action")
	if !ok {
		action, _ = form.Attr("action")
	}
	pageCtx, _ := form.Find(`input[name=ctx]`).Attr("value")
	res, err := postPage(client, base+action, url.Values{"ctx": {pageCtx}}, "Sec-Fetch-Site", "same-origin", "Origin", base)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, p.LeadContacts(simulator.SeedLeadThreeContacts), "the removal went through")

	uctx, ucancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ucancel()
	require.NoError(t, p.Uninstall(uctx, false), "ONAPPUNINSTALL reached the app through the proxy")
	deliveries := p.Deliveries()
	require.NotEmpty(t, deliveries)
	last := deliveries[len(deliveries)-1]
	assert.True(t, strings.HasPrefix(last.URL, base+"/"), last.URL)
	assert.Equal(t, http.StatusOK, last.Status)

	// The proxy's request id, not the client's, is the one echoed.
	resp, err := client.Get(base + "/install")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, resp.Header.Get(reqid.Header))
	assert.NotNil(t, resp.TLS, "served over TLS")

	// Straight to the app from an untrusted peer, with a forged header.
	direct := fromAddr("127.0.0.2", nil)
	req, err := http.NewRequest(http.MethodGet, "http://"+appAddr+"/install?direct=1", nil)
	require.NoError(t, err)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set(reqid.Header, "forged-direct-id")
	resp, err = direct.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.NotEqual(t, "forged-direct-id", resp.Header.Get(reqid.Header))

	out := a.output()
	assert.NotContains(t, out, "203.0.113.", "no forged address reached the log")
	assert.NotContains(t, out, "forged-", "no forged request id reached the log")
	var proxied, uninstall int
	for _, l := range logLines(t, out) {
		if l["msg"] != "http" {
			continue
		}
		assert.Equal(t, "127.0.0.2", l["client"], "the real client, by the proxy's word or the peer's: %v", l)
		if l["route"] == "/events/uninstall" {
			uninstall++
		}
		if regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(fmt.Sprint(l["request_id"])) {
			proxied++
		}
	}
	assert.Equal(t, 1, uninstall, "the uninstall event came through")
	assert.GreaterOrEqual(t, proxied, 5, "install, tab, removal, event and page all carried the proxy's request id")
}

func freePort(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)
	var n int
	_, err = fmt.Sscan(port, &n)
	require.NoError(t, err)
	return n
}

// fromAddr is a client whose connections come from the local address ip,
// trusting roots (nil: the system's), without redirects or cookies.
func fromAddr(ip string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext:     d.DialContext,
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

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
			p := a.addInstalledPortal()

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
			// (Its words are not hex, so a fresh random id can never contain them.)
			resp, _ = get(t, a.base+"/install", reqid.Header, "malformed id\"with quote")
			assert.NotContains(t, resp.Header.Get(reqid.Header), "quote")
			other := resp.Header.Get(reqid.Header)
			assert.True(t, reqid.Valid(other))
			assert.NotEqual(t, id, other, "each request has its own id")

			// A 404 and a 405 name their path, without the query.
			resp, _ = get(t, a.base+"/no/such/page?token=sentinel-query")
			assert.Equal(t, http.StatusNotFound, resp.StatusCode)
			put, err := http.NewRequest(http.MethodPut, a.base+"/events/uninstall?x=sentinel-query", nil)
			require.NoError(t, err)
			resp, err = appClient.Do(put)
			require.NoError(t, err)
			resp.Body.Close()
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
// database stopped: handlers/ops_test.go.
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

// Graceful shutdown finishes in-flight removals: a click is under way on a
// slow portal when run's context is canceled (SIGTERM); the removal
// completes, its answer reaches the user, run returns nil, and the server
// takes no new request meanwhile.
func TestShutdownFinishesInFlightRemovals(t *testing.T) {
	a := newAppProc(t)
	a.start()
	p := a.addInstalledPortal()
	tab := a.openSession(t, p, simulator.SeedLeadThreeContacts).tab

	p.InjectFault(simulator.Fault{Method: "batch", Delay: 1500 * time.Millisecond})
	var res appPage
	var clickErr error
	var wg sync.WaitGroup
	wg.Go(func() { res, clickErr = a.click(tab) })
	time.Sleep(300 * time.Millisecond) // the click is waiting on the portal

	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- a.stop() }()
	time.Sleep(200 * time.Millisecond)
	_, err := http.Get(a.base + "/healthz")
	assert.Error(t, err, "no new connections once shutdown began")

	wg.Wait()
	require.NoError(t, clickErr, "the in-flight click got its answer")
	assert.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, p.LeadContacts(simulator.SeedLeadThreeContacts), "the removal completed")
	require.NoError(t, <-stopped, "run returns nil after a clean shutdown")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// Kill the app in the middle of a load run (SIGTERM: run's context is
// canceled) and start it again on the same database: no install and no
// token is lost. Clicks on many sessions with expired tokens are under way
// — their refreshes slowed down so that several are in flight at the
// kill — and afterwards every portal is still installed, every session
// still works, and the OAuth server never saw a spent refresh token again
// (no invalid_grant: no pair was lost), with one refresh per session in
// all.
func TestRestartMidLoadLosesNoInstallAndNoToken(t *testing.T) {
	a := newAppProc(t)
	a.start()
	portals := []*simulator.Portal{a.addInstalledPortal(), a.addInstalledPortal()}
	var sessions []session
	for i, p := range portals {
		for _, lead := range addLeads(t, p, 1000+100*i, 5, 2) {
			sessions = append(sessions, a.openSession(t, p, lead))
		}
	}
	mark := len(a.sim.Refreshes())
	a.sim.Advance(61 * time.Minute) // every session's access token has expired
	a.sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Times: len(sessions), Delay: 400 * time.Millisecond})

	var wg sync.WaitGroup
	statuses := make([]int, len(sessions))
	for i, s := range sessions {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 40 * time.Millisecond) // a stream of clicks, not one burst
			if res, err := a.click(s.tab); err == nil {
				statuses[i] = res.status
			}
		})
	}
	time.Sleep(250 * time.Millisecond) // refreshes are in flight
	require.NoError(t, a.stop())
	wg.Wait()
	t.Logf("before the kill: %d of %d clicks completed; the others found the app gone", count(statuses, http.StatusOK), len(sessions))

	a.start()
	for _, p := range portals {
		tab, err := a.openTabOn(p, simulator.SeedSales, simulator.SeedLeadSixContacts)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, tab.status, "the install survived: %s", tab.body)
	}
	for _, s := range sessions {
		if len(s.p.LeadContacts(s.lead)) == 0 {
			require.NoError(t, s.p.LinkContact(s.lead, 3, 30, true))
		}
	}
	// All at once: the app's per-portal limiter spaces them out.
	for i, s := range sessions {
		wg.Go(func() {
			res, err := a.click(s.tab)
			if assert.NoError(t, err) {
				statuses[i] = res.status
				assert.Equal(t, http.StatusOK, res.status, "the session and its tokens survived: %s", res.body)
			}
		})
	}
	wg.Wait()
	for _, s := range sessions {
		assert.Empty(t, s.p.LeadContacts(s.lead))
	}
	ok, failed, codes := refreshOutcomes(a.sim, mark)
	assert.Zero(t, failed, "no refresh token was spent twice: %v", codes)
	assert.Equal(t, len(sessions), ok, "one refresh per session across both runs")
}

// Every request's context carries a deadline, whatever the route does.
func TestEveryRequestHasADeadline(t *testing.T) {
	var got time.Duration
	h := withDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, ok := r.Context().Deadline()
		require.True(t, ok)
		got = time.Until(dl)
	}), 17*time.Second)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	assert.InDelta(t, 17*time.Second, got, float64(time.Second))
	assert.Less(t, requestTimeout+2*time.Second, 20*time.Second, "answers within 20 s")
}
