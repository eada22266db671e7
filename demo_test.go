package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/simulator"
)

// anyURL finds every URL in a line of output.
var anyURL = regexp.MustCompile(`https?://[^\s"\\]+`)

// TestDemoStartupNamesOnlyThePortal: `-demo` prints the portal's URL, on
// the port DEMO_PORTAL_ADDR fixes, and no other URL (the app's own page
// outside a portal only says to install the app from the Market); that
// one port serves all of the simulated Bitrix24.
func TestDemoStartupNamesOnlyThePortal(t *testing.T) {
	portalAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(portalAddr)
	e := map[string]string{"ADDR": "127.0.0.1:0", "DEMO_PORTAL_ADDR": portalAddr, "DATABASE_URL": "sqlite:" + t.TempDir() + "/demo.db"}
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-demo"}, env(e), pw)
		_ = pw.Close()
	}()
	var lines []string
	var serving map[string]any
	sc := bufio.NewScanner(pr)
	for serving == nil && sc.Scan() {
		lines = append(lines, sc.Text())
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "serving" {
			serving = rec
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("the demo did not stop")
		}
	})
	require.NotNil(t, serving, "the demo never said it serves:\n%s", strings.Join(lines, "\n"))

	portal := "http://localhost:" + port + "/"
	require.Equal(t, "Demo portal: "+portal, lines[0])
	var urls []string
	for _, l := range lines {
		urls = append(urls, anyURL.FindAllString(l, -1)...)
	}
	assert.Equal(t, []string{portal}, slices.Compact(urls), "the start-up output names the portal's URL only:\n%s", strings.Join(lines, "\n"))
	assert.NotContains(t, serving, "base_url")
	assert.Regexp(t, `^127\.0\.0\.1:\d+$`, serving["addr"], "the app's address is still logged")

	// One port: the portal's page, its REST, the OAuth server and the
	// BX24 library, by name (localhost for the portal, 127.0.0.1 for the
	// OAuth server and the library, as two sites).
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		url, ctype string
		status     int
	}{
		{portal, "text/html; charset=utf-8", http.StatusOK},
		{portal + "rest/profile", "application/json; charset=utf-8", http.StatusUnauthorized},
		{"http://127.0.0.1:" + port + "/oauth/token/", "application/json; charset=utf-8", http.StatusBadRequest},
		{"http://127.0.0.1:" + port + "/api/v1/", "application/javascript; charset=utf-8", http.StatusOK},
	} {
		resp, err := c.Get(tc.url)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, tc.status, resp.StatusCode, tc.url)
		assert.Equal(t, tc.ctype, resp.Header.Get("Content-Type"), tc.url)
	}
}

// A taken DEMO_PORTAL_ADDR is refused with the variable's name.
func TestDemoPortalAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	e := map[string]string{"ADDR": "127.0.0.1:0", "DEMO_PORTAL_ADDR": ln.Addr().String(), "DATABASE_URL": "sqlite:" + t.TempDir() + "/demo.db"}
	err = run(t.Context(), []string{"-demo"}, env(e), io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DEMO_PORTAL_ADDR")
}

// The demo portal's language picker offers exactly the languages the app
// has catalogues for, under the same BCP 47 tags.
func TestDemoLanguagesAreTheCatalogues(t *testing.T) {
	bundle, err := lang.Load()
	require.NoError(t, err)
	var codes []string
	for _, l := range simulator.Languages {
		codes = append(codes, l.Code)
		assert.Equal(t, bundle.For(l.Code).Tag(), l.Tag, l.Code)
		assert.NotEmpty(t, l.Label, l.Code)
	}
	assert.ElementsMatch(t, bundle.Codes(), codes)
}

// Listening on every interface (behind a port mapping), the demo still
// names the app 127.0.0.1 and the portal localhost: two sites.
func TestDemoOnEveryInterfaceKeepsTwoSites(t *testing.T) {
	m, err := manifest.Parse(appJSON)
	require.NoError(t, err)
	e := map[string]string{"ADDR": "0.0.0.0:0", "DEMO_PORTAL_ADDR": "0.0.0.0:0", "DATABASE_URL": "sqlite:" + t.TempDir() + "/demo.db"}
	d, err := startDemo(env(e), m, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer d.close()
	defer d.ln.Close()
	_, appPort, _ := net.SplitHostPort(d.ln.Addr().String())
	assert.Equal(t, "http://127.0.0.1:"+appPort, d.cfg.BaseURL.String())
	assert.Regexp(t, `^http://localhost:\d+/$`, d.portalURL)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+$`, d.cfg.OAuthServers[0])
	assert.Equal(t, strings.TrimSuffix(strings.Replace(d.portalURL, "localhost", "127.0.0.1", 1), "/")+"/api/v1/", d.cfg.JSURL,
		"the JS library on the portal's port, by the OAuth server's name")
}
