package handlers_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/static"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/sqlite"
)

const (
	testClientID     = "app.test.leadcontacts"
	testClientSecret = "sentinel-client-secret-0123456789"
)

// clock is a settable time source for the app side (the simulator has its
// own clock for token lifetimes).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testEnv is the real app (gin engine, SQLite store, REST and OAuth
// clients) served over HTTP and wired to a real simulated portal.
type testEnv struct {
	t       testing.TB
	sim     *simulator.Simulator
	portal  *simulator.Portal
	base    string
	dbPath  string
	keys    *secret.Keyring
	logs    *testsync.Buffer
	clock   *clock
	srv     *httptest.Server
	st      store.Store
	m       *manifest.Manifest
	secrets []string // every secret seen; none may appear in logs or the DB
	// secretsMu guards secrets.
	secretsMu sync.Mutex
	timeout   time.Duration

	// Optional hooks (security_test.go): another backend instead of the
	// SQLite file, a wrapper around the app's outbound transport (to
	// record every request the app makes), and extra test-only routes
	// added to the real engine behind its real middleware.
	openStore func(t testing.TB, keys *secret.Keyring) store.Store
	transport func(http.RoundTripper) http.RoundTripper
	routes    func(*gin.Engine)

	// Reliability hooks (instances_test.go): see restClient, oauthClient
	// and handlerStore; h is the running app, to drain it.
	restOptions  func(*bitrix24.Options)
	oauthTimeout time.Duration
	wrapStore    func(store.Store) store.Store
	wrapOAuth    func(handlers.OAuth) handlers.OAuth
	h            *handlers.Handlers
	// publicBase, if set, is the APP_BASE_URL the app is configured with.
	publicBase string
	// inboundScale multiplies the app's inbound budgets. Tests post many
	// frames from one address in a burst, so by default the budgets are
	// 100 times production's; the tests of the budgets use 1.
	inboundScale float64
	// trustedProxies is the app's TRUSTED_PROXIES.
	trustedProxies []string
	// simOptions and portalOptions adjust the simulator and its portal.
	simOptions    func(*simulator.Options)
	portalOptions func(*simulator.PortalOptions)
	// bulk, when set, is the app's queue of bulk runs.
	bulk handlers.BulkQueue
	// robots, when set, is the app's queue of the automation rules' runs.
	robots handlers.RobotQueue
}

type envOption func(*testEnv)

func withTimeout(d time.Duration) envOption { return func(e *testEnv) { e.timeout = d } }

// withInboundScale multiplies the app's inbound budgets, for tests that
// send many unverifiable requests from one address to test something else.
func withInboundScale(s float64) envOption { return func(e *testEnv) { e.inboundScale = s } }

// withSim adjusts the simulator (and its app) before it starts.
func withSim(f func(*simulator.Options)) envOption { return func(e *testEnv) { e.simOptions = f } }

// withPortal adjusts the test portal before it starts.
func withPortal(f func(*simulator.PortalOptions)) envOption {
	return func(e *testEnv) { e.portalOptions = f }
}

func newTestEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	appJSON, err := os.ReadFile("../app.json")
	require.NoError(t, err)
	m, err := manifest.Parse(appJSON)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e := &testEnv{
		t: t, base: "http://" + ln.Addr().String(), logs: &testsync.Buffer{}, m: m,
		clock:        &clock{t: time.Now()},
		dbPath:       filepath.Join(t.TempDir(), "app.db"),
		secrets:      []string{testClientSecret},
		inboundScale: 100,
	}
	for _, o := range opts {
		o(e)
	}
	so := simulator.Options{
		App: simulator.App{ClientID: testClientID, ClientSecret: testClientSecret, Code: "b24apps.leadcontacts",
			Scope: m.Scope, InstallURL: e.base + m.Install, AppURL: e.base + m.Handler},
		AllowLocalHandlers: true,
	}
	if e.simOptions != nil {
		e.simOptions(&so)
	}
	e.sim, err = simulator.New(so)
	require.NoError(t, err)
	t.Cleanup(e.sim.Close)
	po := simulator.PortalOptions{Seed: true}
	if e.portalOptions != nil {
		e.portalOptions(&po)
	}
	e.portal, err = e.sim.AddPortal(po)
	require.NoError(t, err)
	e.keys, err = secret.NewKeyring(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)

	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.Listener.Close()
	e.srv.Listener = ln
	e.start()
	t.Cleanup(func() {
		e.srv.Close()
		if e.st != nil {
			e.st.Close()
		}
		e.assertNoSecretsLeaked()
	})
	return e
}

// newInstalledEnv is newTestEnv with the app installed on its portal.
func newInstalledEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := newTestEnv(t, opts...)
	e.install()
	return e
}

// newTestTab installs the app and opens, as the salesperson (user 2) in
// English, the tab of a seeded lead with the given number of contacts:
// where most tests of a click start.
func newTestTab(t testing.TB, contacts int, opts ...envOption) (e *testEnv, lead int, tab page) {
	t.Helper()
	e = newInstalledEnv(t, opts...)
	lead = e.leadWithContacts(contacts)
	return e, lead, e.openTab(simulator.SeedSales, lead, "en")
}

// expireAccessTokens moves the simulated portal's clock past the hour an
// access token lives; refresh tokens still work.
func (e *testEnv) expireAccessTokens() { e.sim.Advance(61 * time.Minute) }

// start (re)builds the whole app on the same listener and database file.
func (e *testEnv) start() {
	t := e.t
	var err error
	if e.openStore != nil {
		e.st = e.openStore(t, e.keys)
	} else {
		e.st, err = sqlite.Open(context.Background(), e.dbPath, e.keys)
		require.NoError(t, err)
	}
	bundle, err := lang.Load()
	require.NoError(t, err)
	assets, err := static.Load()
	require.NoError(t, err)
	httpClient := bitrix24.NewHTTPClient(true)
	if e.transport != nil {
		httpClient.Transport = e.transport(httpClient.Transport)
	}
	base, _ := url.Parse(e.base)
	if e.publicBase != "" {
		// The app believes it is served there (https for HSTS); requests
		// still reach it on e.base.
		base, _ = url.Parse(e.publicBase)
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := handlers.New(handlers.Config{
		BaseURL: base, JSURL: e.sim.JSURL(), AllowHTTP: true, Manifest: e.m, RequestTimeout: e.timeout,
		InboundScale: e.inboundScale, TrustedProxies: e.trustedProxies,
	}, handlers.Deps{
		Store: e.handlerStore(e.st),
		REST:  e.restClient(httpClient, logger),
		OAuth: e.oauthClient(httpClient),
		Keys:  e.keys, Lang: bundle, Assets: assets, Logger: logger, Now: e.clock.Now,
		Bulk: e.bulk, Robots: e.robots,
	})
	require.NoError(t, err)
	e.h = h
	engine := h.Engine()
	if e.routes != nil {
		e.routes(engine)
	}
	e.srv.Config.Handler = engine
	if e.srv.URL == "" {
		// net/http's own complaints (panics it recovers, bad requests)
		// land in the captured logs too, where the leak check sees them.
		e.srv.Config.ErrorLog = log.New(e.logs, "http: ", 0)
		e.srv.Start()
	}
}

// restart simulates a process restart: a new app on the same database.
func (e *testEnv) restart() {
	require.NoError(e.t, e.st.Close())
	e.st = nil
	e.start()
}

func (e *testEnv) remember(vals ...string) {
	// Concurrent clicks remember their context values at once.
	e.secretsMu.Lock()
	defer e.secretsMu.Unlock()
	for _, v := range vals {
		if len(v) >= 8 {
			e.secrets = append(e.secrets, v)
		}
	}
}

func (e *testEnv) rememberFrame(f simulator.Frame) {
	e.remember(f.Form.Get("AUTH_ID"), f.Form.Get("REFRESH_ID"), f.Form.Get("APPLICATION_TOKEN"))
}

// assertNoSecretsLeaked checks logs and the raw database files.
func (e *testEnv) assertNoSecretsLeaked() {
	logs := e.logs.String()
	var db []byte
	for _, suffix := range []string{"", "-wal"} {
		if b, err := os.ReadFile(e.dbPath + suffix); err == nil {
			db = append(db, b...)
		}
	}
	for _, s := range e.secrets {
		if strings.Contains(logs, s) {
			e.t.Errorf("a secret (%.4s…) appears in the logs", s)
		}
		if bytes.Contains(db, []byte(s)) {
			e.t.Errorf("a secret (%.4s…) appears in the database file", s)
		}
	}
}

// client is a browser-less HTTP client: no cookie jar, no redirects.
var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// page is a fetched page.
type page struct {
	status int
	header http.Header
	doc    *goquery.Document
	body   string
}

// do makes any request, without cookie jar or redirects, with header
// pairs set in order, and parses the answer.
func (e *testEnv) do(method, target string, body io.Reader, header ...string) page {
	e.t.Helper()
	req, err := http.NewRequest(method, target, body)
	require.NoError(e.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return page{status: resp.StatusCode, header: resp.Header, doc: mustDoc(e.t, b), body: string(b)}
}

// send makes any request to the app.
func (e *testEnv) send(method, path string, body io.Reader, header ...string) page {
	e.t.Helper()
	return e.do(method, e.base+path, body, header...)
}

// postForm posts a form to target, with extra header pairs.
func (e *testEnv) postForm(target string, form url.Values, header ...string) page {
	e.t.Helper()
	header = append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)
	return e.do(http.MethodPost, target, strings.NewReader(form.Encode()), header...)
}

// setQuery sets one parameter of a frame's query string, as a forged frame
// would carry it.
func setQuery(t testing.TB, f *simulator.Frame, key, value string) {
	t.Helper()
	u, err := url.Parse(f.URL)
	require.NoError(t, err)
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	f.URL, f.Query = u.String(), q
}

// postFrame POSTs a frame exactly as the portal's page would.
func (e *testEnv) postFrame(f simulator.Frame) page {
	e.t.Helper()
	e.rememberFrame(f)
	return e.postForm(f.URL, f.Form, "Sec-Fetch-Site", "cross-site", "Origin", e.portal.URL())
}

// install runs the UI installer as user 1 (admin) and finishes it.
func (e *testEnv) install() page {
	e.t.Helper()
	f, err := e.portal.BeginInstall(1)
	require.NoError(e.t, err)
	p := e.postFrame(f)
	require.Equal(e.t, http.StatusOK, p.status, p.body)
	e.portal.FinishInstall()
	return p
}

// openTab opens the lead tab as a user.
func (e *testEnv) openTab(userID, leadID int, lang string) page {
	e.t.Helper()
	f, err := e.portal.OpenLeadTab(userID, leadID, lang)
	require.NoError(e.t, err)
	return e.postFrame(f)
}

// clickRemove submits the tab's form as the browser would (same origin).
func (e *testEnv) clickRemove(tab page) page {
	e.t.Helper()
	// With JavaScript the in-page confirmation posts straight to the
	// removal route (data-action); the form's own action is the no-JS
	// confirmation page.
	_, ok := tab.doc.Find("#remove-form").Attr("data-action")
	require.True(e.t, ok, "tab has no in-page removal: %s", tab.body)
	return e.clickRemoveOn(e.base, tab)
}

// leadWithContacts returns a seeded lead with at least n contacts.
func (e *testEnv) leadWithContacts(n int) int {
	e.t.Helper()
	for id := 1; id < 1000; id++ {
		if _, ok := e.portal.Lead(id); ok && len(e.portal.LeadContacts(id)) == n {
			return id
		}
	}
	e.t.Fatalf("no seeded lead with %d contacts", n)
	return 0
}

// newCountingServer counts every request it gets; it stands for a host
// the app must never contact.
func newCountingServer(t *testing.T, n *int) string {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*n++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// mustPortal reads the app's stored record of the test portal.
func (e *testEnv) mustPortal(t testing.TB) *store.Portal {
	t.Helper()
	p, err := e.st.Portal(context.Background(), e.portal.MemberID())
	require.NoError(t, err)
	return p
}

// addInstalledPortal adds a second seeded portal to the simulator and
// installs the app on it: another genuine customer of the same app.
func (e *testEnv) addInstalledPortal(t testing.TB) *simulator.Portal {
	t.Helper()
	other, err := e.sim.AddPortal(simulator.PortalOptions{Seed: true})
	require.NoError(t, err)
	f, err := other.BeginInstall(simulator.SeedAdmin)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, e.postFrame(f).status)
	other.FinishInstall()
	return other
}
