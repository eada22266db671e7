// Package handlers serves the app's HTTP surface: the installer, the lead
// tab and its action, and Bitrix24's event callbacks. Handlers return
// errors; one adapter (page, event) turns them into pages or statuses.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/static"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/templates"
)

// Store is what the handlers need from persistence.
type Store interface {
	SavePortal(ctx context.Context, p *store.Portal) error
	Portal(ctx context.Context, memberID string) (*store.Portal, error)
	UninstallPortal(ctx context.Context, memberID string, clean bool, at time.Time) error
	CreateSession(ctx context.Context, s *store.Session) error
	Session(ctx context.Context, id string, now time.Time) (*store.Session, error)
	UpdateSessionTokens(ctx context.Context, id string, version int64, access, refresh secret.String) error
	HistoryStore
	// The admins' bulk runs (bulkrun.go).
	store.Bulk
	// Refresh safety and portal faults (refresh.go, portal.go).
	store.Locker
	DeleteSession(ctx context.Context, id string) error
	UpdatePortalEndpoint(ctx context.Context, memberID, from, endpoint, domain string) error
	FlagPortal(ctx context.Context, memberID, problem string, at time.Time) error
	UpdatePortalTokens(ctx context.Context, memberID string, version int64, access, refresh secret.String, expiry time.Time) error
	ReportUninstall(ctx context.Context, memberID string, clean bool, at time.Time) error
	ClearUninstallReport(ctx context.Context, memberID string) error
	ReportedUninstalls(ctx context.Context, before time.Time) ([]store.UninstallReport, error)
	RecentTokens(ctx context.Context, memberID string, limit int, now time.Time) ([]store.TokenPair, error)
	UpdateAppTokenHash(ctx context.Context, memberID, old, fresh string) error
	// Ping is the readiness probe's question (health.go).
	Ping(ctx context.Context) error
}

// REST is what the handlers need from the Bitrix24 REST client.
type REST interface {
	Call(ctx context.Context, endpoint string, token secret.String, method string, params map[string]any, out any) error
	Batch(ctx context.Context, endpoint string, token secret.String, halt bool, cmds []bitrix24.Cmd) (*bitrix24.BatchResult, error)
}

// OAuth is what the handlers need from the OAuth client.
type OAuth interface {
	Trusted(endpoint string) (string, bool)
	Servers() []string
	Refresh(ctx context.Context, server string, refresh secret.String) (*oauth.Token, error)
}

// Metrics is what the handlers report (internal/metrics implements it):
// each request's route pattern, status and time, and each caller that
// joined work already in flight. Deps.Metrics nil reports nowhere.
type Metrics interface {
	ObserveRequest(method, route string, status int, d time.Duration)
	FlightJoined(kind string)
}

// noMetrics is Metrics that reports nowhere.
type noMetrics struct{}

func (noMetrics) ObserveRequest(string, string, int, time.Duration) {}
func (noMetrics) FlightJoined(string)                               {}

var (
	_ Store = store.Store(nil)
	_ REST  = (*bitrix24.Client)(nil)
	_ OAuth = (*oauth.Client)(nil)
)

// Config is the handlers' part of the app configuration.
type Config struct {
	BaseURL   *url.URL // public base URL; handler URLs sent to Bitrix24 are built from it
	JSURL     string   // BX24 library URL
	AllowHTTP bool     // accept http:// and loopback portals (development, tests)
	Manifest  *manifest.Manifest
	// SessionTTL is how long an opened tab stays usable. It outlives the
	// one-hour access token on purpose: an expired token is refreshed on
	// click with the user's own refresh token.
	SessionTTL time.Duration
	// RequestTimeout bounds every request's upstream work, retries included.
	RequestTimeout time.Duration
	// HistoryRetention is how long removals and undos stay in the admins'
	// history (the page says so; main sweeps older entries).
	HistoryRetention time.Duration
	// UninstallGrace is how long an ONAPPUNINSTALL that Bitrix24 could not
	// confirm waits for a verified frame before the portal is uninstalled
	// as reported (PurgeReportedUninstalls).
	UninstallGrace time.Duration
	// InboundScale multiplies the inbound budgets (inboundLimits): 1 when
	// unset; tests that send many requests from one address on purpose
	// raise it.
	InboundScale float64
	// TrustedProxies are the reverse proxies (CIDRs or addresses) whose
	// X-Forwarded-For names the client, for the per-address budgets and
	// the logs; none by default, so no client can claim an address.
	TrustedProxies []string
	// ReadyTimeout is how long /readyz waits for the database;
	// DefaultReadyTimeout when unset.
	ReadyTimeout time.Duration
}

// DefaultUninstallGrace is Config.UninstallGrace when unset.
const DefaultUninstallGrace = 24 * time.Hour

// Deps are the handlers' collaborators.
type Deps struct {
	Store  Store
	REST   REST
	OAuth  OAuth
	Keys   *secret.Keyring
	Lang   *lang.Bundle
	Assets *static.Assets
	Logger *slog.Logger
	Now    func() time.Time
	// Bulk, when set, enqueues the work of the admins' bulk runs.
	Bulk BulkQueue
	// Robots, when set, enqueues the runs of the automation rules; without
	// it a run is worked while Bitrix24 waits for the answer.
	Robots RobotQueue
	// Metrics, when set, is told about requests and coalesced flights.
	Metrics Metrics
}

// Handlers holds the dependencies of every route. It has no mutable state
// beyond the in-flight refresh group, so one value serves all requests.
type Handlers struct {
	cfg       Config
	d         Deps
	pages     map[string]*template.Template
	ctxCodecs []securecookie.Codec
	cookies   *sessions.CookieStore
	refreshes flights // one token refresh per session and version
	inbound   inbound // budgets of the routes anyone can POST to
	rejected  rejects // tokens Bitrix24 refused lately
	removals  flights // one removal per portal, lead and user
	jsOrigin  string
	// surfaces are the placements whose frame opens the lead page (tab.go),
	// each with its own family of routes.
	surfaces []surface
	secure   bool // the app is served over https
	proxies  []netip.Prefix
	draining atomic.Bool // /readyz answers 503 (health.go)
	buffers  sync.Pool   // of *bytes.Buffer, for render

	// viewCodecs seal the contact list the tab's forms carry (view.go).
	viewCodecs []securecookie.Codec
}

// New validates the configuration and parses the templates.
func New(cfg Config, d Deps) (*Handlers, error) {
	if cfg.BaseURL == nil || cfg.Manifest == nil || d.Store == nil || d.REST == nil || d.OAuth == nil ||
		d.Keys == nil || d.Lang == nil || d.Assets == nil {
		return nil, errors.New("handlers: missing configuration or dependency")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 2 * time.Hour
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 20 * time.Second
	}
	if cfg.HistoryRetention <= 0 {
		cfg.HistoryRetention = DefaultHistoryRetention
	}
	if cfg.UninstallGrace <= 0 {
		cfg.UninstallGrace = DefaultUninstallGrace
	}
	if cfg.InboundScale <= 0 {
		cfg.InboundScale = 1
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	proxies, ok := parseProxies(cfg.TrustedProxies)
	if !ok {
		return nil, fmt.Errorf("handlers: TrustedProxies %q holds an entry that is not an address or a CIDR", cfg.TrustedProxies)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Metrics == nil {
		d.Metrics = noMetrics{}
	}
	surfaces, err := leadSurfaces(cfg.Manifest)
	if err != nil {
		return nil, err
	}
	h := &Handlers{cfg: cfg, d: d, surfaces: surfaces, secure: cfg.BaseURL.Scheme == "https", proxies: proxies}
	h.refreshes.joined = func() { d.Metrics.FlightJoined(flightRefresh) }
	h.removals.joined = func() { d.Metrics.FlightJoined(flightRemoval) }
	if js, err := url.Parse(cfg.JSURL); err == nil && js.Host != "" {
		h.jsOrigin = js.Scheme + "://" + js.Host
	} else {
		return nil, fmt.Errorf("handlers: JS URL %q is not absolute", cfg.JSURL)
	}
	h.pages = map[string]*template.Template{}
	for _, p := range []string{"tab", "error", "install", "index", "confirm", "app"} {
		t, err := template.New(p).ParseFS(templates.FS, "layout.html", p+".html")
		if err != nil {
			return nil, fmt.Errorf("handlers: parse %s: %w", p, err)
		}
		h.pages[p] = t
	}
	h.ctxCodecs = securecookie.CodecsFromPairs(d.Keys.Pairs("page-context")...)
	for _, c := range h.ctxCodecs {
		sc := c.(*securecookie.SecureCookie)
		sc.MaxAge(int(cfg.SessionTTL.Seconds()))
		sc.SetSerializer(securecookie.JSONEncoder{})
	}
	h.viewCodecs = newViewCodecs(d.Keys, cfg.SessionTTL)
	h.cookies = sessions.NewCookieStore(d.Keys.Pairs("browser-cookie")...)
	h.cookies.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(cfg.SessionTTL.Seconds()),
		Secure:   true,
		HttpOnly: true,
		// The app lives in a cross-site iframe: only SameSite=None cookies
		// are sent there, and Partitioned (CHIPS) keys the cookie to the
		// portal's site so no other site ever sees it.
		SameSite:    http.SameSiteNoneMode,
		Partitioned: true,
	}
	h.cookies.MaxAge(h.cookies.Options.MaxAge)
	return h, nil
}

// The placements whose frame opens the lead page: the lead card's tab and
// the lead list's row menu (its slider).
const (
	placementLeadTab      = "CRM_LEAD_DETAIL_TAB"
	placementLeadListMenu = "CRM_LEAD_LIST_MENU"
)

// now returns the current time.
func (h *Handlers) now() time.Time { return h.d.Now() }

// portalOrigin returns the origin that may frame the app's pages for a
// stored portal: scheme of its verified REST endpoint plus its host.
func portalOrigin(p *store.Portal) string {
	u, err := url.Parse(p.RESTEndpoint)
	if err != nil || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}
