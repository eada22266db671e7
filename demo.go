package main

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
)

// demoEnv is a running demo: a simulated Bitrix24 (OAuth server, BX24 JS
// library and one seeded portal, all on one listener) and the app's
// configuration pointing at it. The portal answers as "localhost" and the
// app as "127.0.0.1": two different sites, so the browser treats the
// app's frame as cross-site, exactly as with a real portal.
type demoEnv struct {
	cfg       Config
	ln        net.Listener
	portalURL string
	portal    *simulator.Portal // for tests that inject faults
	close     func()
}

// Where the demo listens by default: the app on ADDR and all of the
// simulated Bitrix24 (portal pages, REST, OAuth server, BX24 JS library)
// on DEMO_PORTAL_ADDR. Two fixed ports, so a demo on a remote machine or
// in a container needs two port forwards, the same every run.
const (
	defaultDemoAddr       = "127.0.0.1:8080"
	defaultDemoPortalAddr = "127.0.0.1:8081"
)

// startDemo needs no configuration; ADDR (default 127.0.0.1:8080),
// DEMO_PORTAL_ADDR (default 127.0.0.1:8081), DATABASE_URL (default a
// fresh SQLite file in a temporary directory) and METRICS_ADDR (default
// none) may be given.
func startDemo(getenv func(string) string, m *manifest.Manifest, logger *slog.Logger) (*demoEnv, error) {
	addr := cmp.Or(strings.TrimSpace(getenv("ADDR")), defaultDemoAddr)
	portalAddr := cmp.Or(strings.TrimSpace(getenv("DEMO_PORTAL_ADDR")), defaultDemoPortalAddr)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo: listen on %s: %w (set ADDR to another address)", addr, err)
	}
	base, _ := url.Parse("http://" + demoAppHost(ln.Addr()))
	clientSecret := randomHex(24)

	tab, _ := m.Placement("CRM_LEAD_DETAIL_TAB")
	sim, err := simulator.New(simulator.Options{
		App: simulator.App{
			ClientID:     "local.demo.leadcontacts",
			ClientSecret: clientSecret,
			Code:         "b24apps.leadcontacts",
			Version:      "1",
			Scope:        m.Scope,
			InstallURL:   manifest.Absolute(base, m.Install),
			AppURL:       manifest.Absolute(base, m.Handler),
			Name:         tab.Title["en"], // the left-menu item
		},
		Addr:               portalAddr,
		AllowLocalHandlers: true,
		Logf: func(format string, args ...any) {
			logger.Debug("simulator: " + fmt.Sprintf(format, args...))
		},
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("demo: %w (set DEMO_PORTAL_ADDR to another address)", err)
	}
	// The portal shares the simulator's listener, answering as localhost
	// where the OAuth server and the JS library answer as 127.0.0.1.
	portal, err := sim.AddPortal(simulator.PortalOptions{Host: "localhost", Seed: true, SharedListener: true})
	if err != nil {
		sim.Close()
		_ = ln.Close()
		return nil, err
	}

	dir := ""
	dbURL := strings.TrimSpace(getenv("DATABASE_URL"))
	if dbURL == "" {
		dir, err = os.MkdirTemp("", "leadcontacts-demo-")
		if err != nil {
			sim.Close()
			_ = ln.Close()
			return nil, err
		}
		dbURL = "sqlite:" + filepath.Join(dir, "demo.db")
	}
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	cfg := Config{
		ClientID:     "local.demo.leadcontacts",
		ClientSecret: secret.New(clientSecret),
		BaseURL:      base,
		Secret:       master,
		DatabaseURL:  dbURL,
		Addr:         ln.Addr().String(),
		OAuthServers: []string{sim.OAuthURL()},
		AllowHTTP:    true,
		JSURL:        sim.JSURL(),
		MetricsAddr:  strings.TrimSpace(getenv("METRICS_ADDR")),

		HistoryRetention: defaultHistoryRetentionDays * 24 * time.Hour,
	}
	return &demoEnv{
		cfg: cfg, ln: ln, portalURL: portal.URL() + "/", portal: portal,
		close: func() {
			sim.Close()
			if dir != "" {
				_ = os.RemoveAll(dir)
			}
		},
	}, nil
}

// demoAppHost is the app's host:port as the browser reaches it: a
// listener on every interface (ADDR=0.0.0.0:8080, as in a container) is
// named 127.0.0.1, which keeps the app a different site from the portal.
func demoAppHost(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return a.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
