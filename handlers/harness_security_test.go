package handlers_test

// Helpers of the security tests (security_test.go, ops_test.go): a
// recorder of every request the app sends out, raw access to the SQLite
// file, page-context minting with the app's own keys, and the header
// checks every HTML page must pass.

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/gorilla/securecookie"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
)

// wireReq is one request the app sent to the outside world.
type wireReq struct {
	Host, Path, Query, Body string
}

// wireLog wraps the app's outbound transport (the one client every REST and
// OAuth call goes through) and records each request, so a test can prove
// where the app sent what. It also keeps the tokens the OAuth server
// issued, which only ever travel inside the app: they are the sentinels
// the leak checks look for in logs and in the database.
type wireLog struct {
	mu     sync.Mutex
	reqs   []wireReq
	issued []string
}

type wireRoundTripFunc func(*http.Request) (*http.Response, error)

func (f wireRoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (w *wireLog) wrap(next http.RoundTripper) http.RoundTripper {
	return wireRoundTripFunc(func(r *http.Request) (*http.Response, error) {
		var body []byte
		if r.Body != nil {
			var err error
			body, err = io.ReadAll(r.Body)
			_ = r.Body.Close()
			if err != nil {
				return nil, err
			}
			r = r.Clone(r.Context())
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		w.mu.Lock()
		w.reqs = append(w.reqs, wireReq{Host: r.URL.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body)})
		w.mu.Unlock()
		resp, err := next.RoundTrip(r)
		if err != nil || !strings.HasSuffix(r.URL.Path, "/oauth/token/") {
			return resp, err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		if err != nil {
			return resp, nil // the app sees the same truncated body
		}
		var tok struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if json.Unmarshal(b, &tok) == nil {
			w.mu.Lock()
			w.issued = append(w.issued, tok.AccessToken, tok.RefreshToken)
			w.mu.Unlock()
		}
		return resp, nil
	})
}

func (w *wireLog) requests() []wireReq {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]wireReq(nil), w.reqs...)
}

func (w *wireLog) issuedTokens() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.issued...)
}

// hosts returns the distinct hosts of the recorded requests since index from.
func (w *wireLog) hosts(from int) []string {
	var out []string
	for _, r := range w.requests()[from:] {
		if !slices.Contains(out, r.Host) {
			out = append(out, r.Host)
		}
	}
	return out
}

// newWiredEnv is newTestEnv with every outbound request recorded. Tokens
// the OAuth server issued join the env's secrets, so the env's own leak
// check (logs and database file, at cleanup) looks for them too.
func newWiredEnv(t *testing.T, opts ...envOption) (*testEnv, *wireLog) {
	t.Helper()
	w := &wireLog{}
	e := newTestEnv(t, append(opts, func(e *testEnv) { e.transport = w.wrap })...)
	// Registered after newTestEnv's cleanup, so it runs before the check.
	t.Cleanup(func() { e.remember(w.issuedTokens()...) })
	return e, w
}

// secretsSeen returns the secrets remembered so far.
func (e *testEnv) secretsSeen() []string {
	e.secretsMu.Lock()
	defer e.secretsMu.Unlock()
	return append([]string(nil), e.secrets...)
}

// hostOf returns host:port of an absolute URL.
func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Host
}

// rawDB opens the app's SQLite file beside the store, to count or tamper
// with rows the way someone with the file would.
func (e *testEnv) rawDB() *sql.DB {
	e.t.Helper()
	db, err := sql.Open("sqlite", e.dbPath+"?_pragma=busy_timeout(5000)")
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = db.Close() })
	return db
}

// sessionRows counts frame sessions: a refused request must create none.
func (e *testEnv) sessionRows() int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.rawDB().QueryRow(`SELECT count(*) FROM sessions`).Scan(&n))
	return n
}

// dbFile returns the SQLite file and its write-ahead log as one blob.
func (e *testEnv) dbFile() []byte {
	e.t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal"} {
		if b, err := os.ReadFile(e.dbPath + suffix); err == nil {
			all = append(all, b...)
		}
	}
	require.NotEmpty(e.t, all)
	return all
}

// contextName and the JSON fields below mirror handlers/pagectx.go: a test
// holding the app's keys can mint or read page contexts, which is what an
// attacker who only has a browser can never do.
const pageContextName = "lead-tab-context"

func (e *testEnv) contextCodecs() []securecookie.Codec {
	codecs := securecookie.CodecsFromPairs(e.keys.Pairs("page-context")...)
	for _, c := range codecs {
		c.(*securecookie.SecureCookie).SetSerializer(securecookie.JSONEncoder{})
	}
	return codecs
}

// readContext decodes a page's context with the app's keys.
func (e *testEnv) readContext(ctx string) map[string]any {
	e.t.Helper()
	var v map[string]any
	require.NoError(e.t, securecookie.DecodeMulti(pageContextName, ctx, &v, e.contextCodecs()...))
	return v
}

// mintContext signs a page context with the app's keys under a name.
func (e *testEnv) mintContext(name string, v map[string]any) string {
	e.t.Helper()
	s, err := securecookie.EncodeMulti(name, v, e.contextCodecs()...)
	require.NoError(e.t, err)
	e.remember(s)
	return s
}

func mustDoc(t testing.TB, b []byte) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(b))
	require.NoError(t, err)
	return doc
}

func contextOf(p page) string {
	v, _ := p.doc.Find(`input[name=ctx]`).Attr("value")
	return v
}

// appCookie returns the app's browser-binding cookie from a response.
func appCookie(t *testing.T, p page) *http.Cookie {
	t.Helper()
	for _, sc := range p.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(sc)
		require.NoError(t, err)
		if strings.HasPrefix(c.Name, "__Host-") {
			return c
		}
	}
	t.Fatalf("no __Host- cookie in %v", p.header.Values("Set-Cookie"))
	return nil
}

// mustKeyring builds the keyring of APP_SECRET (and APP_SECRET_PREVIOUS)
// from 32-byte masters filled with the given bytes; the env uses 7.
func mustKeyring(t testing.TB, current byte, previous ...byte) *secret.Keyring {
	t.Helper()
	var prev [][]byte
	for _, b := range previous {
		prev = append(prev, bytes.Repeat([]byte{b}, 32))
	}
	k, err := secret.NewKeyring(bytes.Repeat([]byte{current}, 32), prev...)
	require.NoError(t, err)
	return k
}

// appJSON is the part of app.json that names the app's entry points.
type appJSON struct {
	Install    string `json:"install"`
	Handler    string `json:"handler"`
	Placements []struct {
		Handler string `json:"handler"`
	} `json:"placements"`
	Events map[string]string `json:"events"`
	Robots []struct {
		Handler string `json:"handler"`
	} `json:"robots"`
}

func readAppJSON(t *testing.T) appJSON {
	t.Helper()
	b, err := os.ReadFile("../app.json")
	require.NoError(t, err)
	var doc struct {
		Bitrix24 appJSON `json:"bitrix24"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	require.NotEmpty(t, doc.Bitrix24.Install)
	return doc.Bitrix24
}

// csp parses a Content-Security-Policy into directive → source list.
func csp(t *testing.T, h http.Header) map[string][]string {
	t.Helper()
	vals := h.Values("Content-Security-Policy")
	require.Len(t, vals, 1, "exactly one CSP header")
	out := map[string][]string{}
	for _, d := range strings.Split(vals[0], ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		_, dup := out[f[0]]
		require.False(t, dup, "directive %s repeated in %q", f[0], vals[0])
		out[f[0]] = f[1:]
	}
	return out
}

// assertPageHeaders checks what every HTML response must carry: a CSP
// whose frame-ancestors is exactly the verified portal origin (or 'none'),
// no wildcard and no scheme-wide source anywhere, scripts only from known
// origins without inline code, no X-Frame-Options (it would fight
// frame-ancestors and break the tab), nosniff, no referrer, and no caching
// (pages carry page contexts).
func assertPageHeaders(t *testing.T, what string, h http.Header, frameOrigin string) {
	t.Helper()
	p := csp(t, h)
	want := []string{"'none'"}
	if frameOrigin != "" {
		want = []string{frameOrigin}
	}
	assert.Equal(t, want, p["frame-ancestors"], "%s: frame-ancestors", what)
	for dir, srcs := range p {
		for _, s := range srcs {
			assert.NotContains(t, s, "*", "%s: wildcard in %s", what, dir)
			assert.NotContains(t, []string{"http:", "https:"}, s, "%s: scheme-wide source in %s", what, dir)
			if dir != "img-src" {
				// data: images are inert; data: or blob: anywhere else
				// could carry script or a document.
				assert.NotContains(t, []string{"data:", "blob:"}, s, "%s: %s allows %s", what, dir, s)
			}
			if dir == "script-src" || dir == "default-src" {
				assert.NotContains(t, []string{"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'"}, s, "%s: %s allows %s", what, dir, s)
			}
		}
	}
	assert.Equal(t, []string{"'none'"}, p["default-src"], "%s: default-src", what)
	assert.Equal(t, []string{"'self'"}, p["form-action"], "%s: form-action", what)
	assert.Equal(t, []string{"'none'"}, p["base-uri"], "%s: base-uri", what)
	assert.Equal(t, []string{"'none'"}, p["object-src"], "%s: object-src", what)
	assert.Empty(t, h.Values("X-Frame-Options"), "%s: X-Frame-Options", what)
	assertCommonHeaders(t, what, h)
	assert.Equal(t, "no-store", h.Get("Cache-Control"), "%s: Cache-Control", what)
}

// assertCommonHeaders checks the headers every response carries.
func assertCommonHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), "%s: nosniff", what)
	assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"), "%s: Referrer-Policy", what)
}
