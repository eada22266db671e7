// Package simulator is an in-process fake of a Bitrix24 cloud portal and of
// the Bitrix24 OAuth server (oauth.bitrix.info), for unit tests, browser tests
// and the demo mode.
//
// One Simulator is the OAuth server (it also serves the BX24 JS shim, playing
// api.bitrix24.com) and owns any number of portals, each on its own listener
// so that each is its own origin, or, one per host name, on the simulator's
// own listener (PortalOptions.SharedListener: one port for everything, as
// the demo runs). The simulator models Bitrix24 as documented
// in bitrix24/b24restdocs, not as our app happens to use it; where the docs are
// silent the strict choice is made and marked with a "SILENT:" comment.
//
// All state lives behind one mutex in the Simulator; nothing is package-level.
//
// Typical test use:
//
//	sim, _ := simulator.New(simulator.Options{App: app, AllowLocalHandlers: true})
//	defer sim.Close()
//	portal, _ := sim.AddPortal(simulator.PortalOptions{Seed: true})
//	installer, _ := portal.BeginInstall(simulator.SeedAdmin) // POST it to the app
//	portal.FinishInstall()                                   // BX24.installFinish()
//	tab, _ := portal.OpenLeadTab(simulator.SeedSales, simulator.SeedLeadThreeContacts, "en")
//	// POST tab.Form to tab.URL, then inspect portal.LeadContacts, portal.Calls ...
//
// In a browser, the portal's own pages (GET portal.URL()) drive the same
// flow: "Install app" opens the installer slider, lead cards show the app's
// tab, and the BX24 shim at sim.JSURL() talks to the page with postMessage
// (protocol documented in assets/bx24.js).
//
// Tokens expire by the simulated clock (Now, Advance); the rate limiter uses
// the real clock. Faults (Portal.InjectFault, Simulator.InjectOAuthFault) are
// checked before anything else.
package simulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Token lifetimes as documented (settings/oauth/index.md).
const (
	accessTokenTTL  = time.Hour
	refreshTokenTTL = 180 * 24 * time.Hour
	authCodeTTL     = 30 * time.Second
)

// App is the marketplace app registered on the OAuth server.
type App struct {
	ClientID, ClientSecret string
	Code                   string   // app code, e.g. "b24apps.leadcontacts"
	Version                string   // e.g. "1"
	Scope                  []string // e.g. {"crm","placement"}; nil means {"crm","placement"}
	InstallURL             string   // app's installer URL (opened in the portal's install slider)
	// AppURL is the app's main page (the console's "Application URL"),
	// framed from the left menu once the app is installed; optional.
	AppURL string
	// Name is the app's left-menu item; default "Application".
	Name string
	// Status is the app status letter sent as "status" (F free, L local, P paid,
	// ...); empty means "F".
	Status string
	// RedirectURI is where /oauth/authorize/ on a portal sends the user with a
	// code (it comes from the app settings, never from the request). Optional.
	RedirectURI string
}

// Options configures a Simulator.
type Options struct {
	App App
	// Addr is where the OAuth server, the BX24 JS shim and the portals
	// added with SharedListener listen, e.g. "127.0.0.1:8081"; default
	// "127.0.0.1:0", a fresh port. The OAuth server names itself
	// 127.0.0.1 on that port whatever the listen host (so 0.0.0.0 serves
	// a container's port mapping).
	Addr string
	// AllowLocalHandlers lets placement.bind and event.bind accept handler URLs on
	// localhost/loopback/private addresses. Real Bitrix24 rejects them with
	// ERROR_WRONG_HANDLER_URL; tests and the demo set it to true.
	AllowLocalHandlers bool
	// EventTransport, if set, carries the event POSTs to the app's
	// handlers (default: http.DefaultTransport); a test behind a TLS proxy
	// with its own CA sets one that trusts it, as real Bitrix24 trusts
	// public CAs.
	EventTransport http.RoundTripper
	// Logf, if set, receives one line per notable event (never a whole token).
	Logf func(format string, args ...any)
	// RefreshKeepsAccess keeps an access token working after its refresh
	// token was used. Whether Bitrix24 ends it is unsettled (the legacy
	// docs say a refresh ends the old access token; nothing recorded says
	// either way), so the default is the strict reading and tests run both.
	RefreshKeepsAccess bool
}

// Refresh records one request to the OAuth token endpoint.
type Refresh struct {
	Time               time.Time // simulated clock
	GrantType          string
	ClientID           string
	RefreshTokenPrefix string // first 4 characters only
	Status             int
	Error              string // OAuth error code, "" on success
	UserID             int
	MemberID           string
}

// TokenPair is an access/refresh token pair issued by the OAuth server.
type TokenPair struct {
	AccessToken, RefreshToken string
	ExpiresIn                 int
}

// Simulator is the fake OAuth server plus its portals.
type Simulator struct {
	app        App
	allowLocal bool
	keepAccess bool
	events     http.RoundTripper
	logf       func(format string, args ...any)

	ln     net.Listener
	srv    *http.Server
	url    string
	done   chan struct{}
	closed sync.Once

	// mu guards everything below and all Portal state: one lock keeps the
	// model simple and race-free; nothing slow runs while it is held.
	mu        sync.Mutex
	offset    time.Duration
	access    map[string]*accessToken
	refresh   map[string]*refreshToken
	codes     map[string]*authCode
	refreshes []Refresh
	portals   []*Portal
	faults    []Fault // OAuth-server faults, see InjectOAuthFault
	// hosts maps a Host (lower-case host:port) to the portal answering as
	// it on the simulator's own listener (see front).
	hosts map[string]http.Handler
}

type accessToken struct {
	portal  *Portal
	userID  int
	expires time.Time
	revoked bool
}

type refreshToken struct {
	portal  *Portal
	userID  int
	expires time.Time
	used    bool
	access  string // the access token issued together with this one
}

type authCode struct {
	portal  *Portal
	userID  int
	expires time.Time
	used    bool
}

// New starts the OAuth server on Options.Addr (default 127.0.0.1:0). It
// also serves the BX24 JS shim.
func New(opts Options) (*Simulator, error) {
	app := opts.App
	if app.ClientID == "" || app.ClientSecret == "" {
		return nil, errors.New("simulator: App.ClientID and App.ClientSecret are required")
	}
	if app.Scope == nil {
		app.Scope = []string{"crm", "placement"}
	}
	if app.Version == "" {
		app.Version = "1"
	}
	if app.Status == "" {
		app.Status = "F"
	}
	ln, base, err := listenSim(opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Simulator{
		app:        app,
		allowLocal: opts.AllowLocalHandlers,
		events:     opts.EventTransport,
		keepAccess: opts.RefreshKeepsAccess,
		logf:       opts.Logf,
		ln:         ln,
		url:        base,
		done:       make(chan struct{}),
		access:     map[string]*accessToken{},
		refresh:    map[string]*refreshToken{},
		codes:      map[string]*authCode{},
		hosts:      map[string]http.Handler{},
	}
	s.srv = &http.Server{Handler: s.front(s.oauthMux()), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the OAuth server and every portal. Hanging faults are released.
func (s *Simulator) Close() {
	s.closed.Do(func() {
		close(s.done)
		_ = s.srv.Close()
		s.mu.Lock()
		var servers []*http.Server
		for _, p := range s.portals {
			if p.srv != nil { // nil on the shared listener, closed above
				servers = append(servers, p.srv)
			}
			servers = append(servers, p.moved...)
		}
		s.mu.Unlock()
		for _, srv := range servers {
			_ = srv.Close()
		}
	})
}

// OAuthURL is the OAuth server base, e.g. "http://127.0.0.1:41234"; the token
// endpoint is OAuthURL()+"/oauth/token/" and its REST is OAuthURL()+"/rest/".
func (s *Simulator) OAuthURL() string { return s.url }

// JSURL is the URL of the BX24 JS shim, the stand-in for
// https://api.bitrix24.com/api/v1/.
func (s *Simulator) JSURL() string { return s.url + "/api/v1/" }

// serverEndpoint is what Bitrix24 calls SERVER_ENDPOINT / server_endpoint.
func (s *Simulator) serverEndpoint() string { return s.url + "/rest/" }

// locked runs fn under the simulator's one lock and returns its result.
func locked[T any](s *Simulator, fn func() T) T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn()
}

// Now is the simulated clock: real time plus the offset added by Advance.
func (s *Simulator) Now() time.Time { return locked(s, s.nowLocked) }

func (s *Simulator) nowLocked() time.Time { return time.Now().Add(s.offset) }

// Advance moves the simulated clock forward; tokens expire by this clock.
func (s *Simulator) Advance(d time.Duration) {
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

// Refreshes returns every token-endpoint request so far, oldest first.
func (s *Simulator) Refreshes() []Refresh {
	return locked(s, func() []Refresh { return append([]Refresh(nil), s.refreshes...) })
}

// InjectOAuthFault queues a fault for the OAuth server. f.Method matches the
// grant type on /oauth/token/ ("refresh_token", "authorization_code"), or
// "app.info" for /rest/app.info; "" matches any OAuth-server request.
func (s *Simulator) InjectOAuthFault(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
}

// ClearOAuthFaults drops every OAuth-server fault still queued.
func (s *Simulator) ClearOAuthFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

func (s *Simulator) log(format string, args ...any) {
	if s.logf != nil {
		s.logf("simulator: "+format, args...)
	}
}

// issueLocked creates a fresh token pair for a user of a portal.
func (s *Simulator) issueLocked(p *Portal, userID int) TokenPair {
	now := s.nowLocked()
	at, rt := newToken(), newToken()
	s.access[at] = &accessToken{portal: p, userID: userID, expires: now.Add(accessTokenTTL)}
	s.refresh[rt] = &refreshToken{portal: p, userID: userID, expires: now.Add(refreshTokenTTL), access: at}
	return TokenPair{AccessToken: at, RefreshToken: rt, ExpiresIn: int(accessTokenTTL / time.Second)}
}

// revokePortalLocked kills every token of the app on one portal (uninstall).
func (s *Simulator) revokePortalLocked(p *Portal) {
	for _, t := range s.access {
		if t.portal == p {
			t.revoked = true
		}
	}
	for _, t := range s.refresh {
		if t.portal == p {
			t.used = true
		}
	}
	for _, c := range s.codes {
		if c.portal == p {
			c.used = true
		}
	}
}

// tokenState classifies an access token for a given portal (nil: any portal).
type tokenState int

const (
	tokenOK tokenState = iota
	tokenUnknown
	tokenExpired
)

func (s *Simulator) checkTokenLocked(token string, p *Portal) (*accessToken, tokenState) {
	// A token revoked by uninstall or by a refresh (legacy docs: the access
	// token issued with a used refresh token dies too) is simply unknown.
	t, ok := s.access[token]
	if !ok || t.revoked || (p != nil && t.portal != p) || !t.portal.appPresentLocked() {
		return nil, tokenUnknown
	}
	if !s.nowLocked().Before(t.expires) {
		return t, tokenExpired
	}
	return t, tokenOK
}

// newToken returns a random token shaped like Bitrix24's (hex, 64 chars).
func newToken() string { return randomHex(32) }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("simulator: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// prefix4 returns the first four characters of a secret, for logs and records.
func prefix4(s string) string {
	if len(s) > 4 {
		return s[:4]
	}
	return s
}

func (s *Simulator) scopeString() string { return strings.Join(s.app.Scope, ",") }

// A comma list of scopes is met by any one of them (user.get works under
// user, user_brief or user_basic).
func (s *Simulator) hasScope(scope string) bool {
	if scope == "basic" || scope == "" {
		// profile.md: basic methods work "without any scopes". SILENT for
		// app.info and batch, which are treated the same way.
		return true
	}
	for one := range strings.SplitSeq(scope, ",") {
		if slices.Contains(s.app.Scope, one) {
			return true
		}
	}
	return false
}

// waitOrDone sleeps for d unless ctx ends or the simulator closes first; it
// reports whether the full delay elapsed.
func (s *Simulator) waitOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}
