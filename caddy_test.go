package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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
