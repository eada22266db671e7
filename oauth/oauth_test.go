package oauth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
)

const clientSecret = "sentinel-client-secret-42"

func newSim(t *testing.T) (*simulator.Simulator, *simulator.Portal) {
	t.Helper()
	sim, err := simulator.New(simulator.Options{App: simulator.App{ClientID: "app.1", ClientSecret: clientSecret, InstallURL: "https://app.example.com/install"}})
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	p, err := sim.AddPortal(simulator.PortalOptions{Seed: true})
	require.NoError(t, err)
	_, err = p.BeginInstall(1)
	require.NoError(t, err)
	return sim, p
}

// requestLog records the query string of every request a fake token
// server receives; handlers run on the server's goroutines.
type requestLog struct {
	mu  sync.Mutex
	got []string
}

func (l *requestLog) record(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r.URL.RawQuery)
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = nil
}

func (l *requestLog) queries() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

// newTestClient returns a client for the test app that trusts only server.
func newTestClient(server string) *oauth.Client {
	return oauth.New("app.1", secret.New(clientSecret), []string{server}, bitrix24.NewHTTPClient(true))
}

func TestRefreshReturnsTheVouchedPortal(t *testing.T) {
	sim, p := newSim(t)
	c := newTestClient(sim.OAuthURL())
	pair := p.IssueTokens(2)
	tok, err := c.Refresh(context.Background(), sim.OAuthURL()+"/rest/", secret.New(pair.RefreshToken))
	require.NoError(t, err)
	assert.Equal(t, p.MemberID(), tok.MemberID)
	assert.Equal(t, p.RESTEndpoint(), tok.ClientEndpoint)
	assert.EqualValues(t, 2, tok.UserID)
	assert.Equal(t, sim.OAuthURL(), tok.Server)
	assert.NotEqual(t, pair.RefreshToken, tok.RefreshToken.Reveal())
	assert.WithinDuration(t, sim.Now().Add(time.Hour), tok.Expiry, 2*time.Minute)

	// Single-use: the same refresh token again is a dead grant.
	_, err = c.Refresh(context.Background(), sim.OAuthURL(), secret.New(pair.RefreshToken))
	assert.ErrorIs(t, err, oauth.ErrInvalidGrant)
	assert.NotContains(t, err.Error(), clientSecret)
	assert.NotContains(t, err.Error(), pair.RefreshToken)
}

func TestConcurrentRefreshesOfOneTokenShareOneRequest(t *testing.T) {
	sim, p := newSim(t)
	c := newTestClient(sim.OAuthURL())
	pair := p.IssueTokens(2)
	before := len(sim.Refreshes())
	// Slow enough that every caller joins before the answer: one arriving
	// after it would find the single-use token spent.
	sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := range results {
		wg.Go(func() {
			tok, err := c.Refresh(context.Background(), sim.OAuthURL(), secret.New(pair.RefreshToken))
			if err == nil {
				results[i] = tok.AccessToken.Reveal()
			}
		})
	}
	wg.Wait()
	assert.Len(t, sim.Refreshes()[before:], 1)
	for _, r := range results {
		assert.Equal(t, results[0], r)
		assert.NotEmpty(t, r)
	}
}

func TestUntrustedServerNeverSeesTheSecret(t *testing.T) {
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer evil.Close()
	sim, _ := newSim(t)
	c := newTestClient(sim.OAuthURL())
	for _, server := range []string{evil.URL, evil.URL + "/rest/", sim.OAuthURL() + "@" + strings.TrimPrefix(evil.URL, "http://"),
		strings.Replace(sim.OAuthURL(), "http://", "https://", 1), sim.OAuthURL() + "/other/", ""} {
		_, err := c.Refresh(context.Background(), server, secret.New("r"))
		assert.ErrorIs(t, err, oauth.ErrUntrustedServer, server)
	}
	assert.Zero(t, hits.Load())
}

func TestWrongClientAndUnreachable(t *testing.T) {
	sim, p := newSim(t)
	bad := oauth.New("app.1", secret.New("wrong-secret"), []string{sim.OAuthURL()}, bitrix24.NewHTTPClient(true))
	_, err := bad.Refresh(context.Background(), sim.OAuthURL(), secret.New(p.IssueTokens(2).RefreshToken))
	assert.ErrorIs(t, err, oauth.ErrInvalidClient)

	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client hanging up only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer hang.Close()
	c := newTestClient(hang.URL)
	c.Timeout = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.Refresh(ctx, hang.URL, secret.New("refresh-sentinel-123"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), clientSecret)
	assert.NotContains(t, err.Error(), "refresh-sentinel-123")

	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
	}))
	defer html.Close()
	c = newTestClient(html.URL)
	_, err = c.Refresh(context.Background(), html.URL, secret.New("r"))
	assert.ErrorIs(t, err, oauth.ErrUnreachable)
}

// G5 at the OAuth client: the server hangs. Every waiter gives up at its
// own deadline; the shared request ends at the client's Timeout; the next
// attempt makes a new request, which works (the hung one never spent the
// token).
func TestHangingRefreshFailsWaitersAtTheirDeadline(t *testing.T) {
	sim, p := newSim(t)
	c := newTestClient(sim.OAuthURL())
	c.Timeout = 800 * time.Millisecond
	pair := p.IssueTokens(2)
	sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Hang: true})

	deadlines := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}
	var wg sync.WaitGroup
	for _, d := range deadlines {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), d)
			defer cancel()
			start := time.Now()
			_, err := c.Refresh(ctx, sim.OAuthURL(), secret.New(pair.RefreshToken))
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.InDelta(t, d, time.Since(start), float64(150*time.Millisecond), "gave up at its own deadline")
		})
	}
	wg.Wait()

	// The hung request ends at the client's timeout; then a new one works.
	require.Eventually(t, func() bool {
		for _, r := range sim.Refreshes() {
			if r.Error == "fault: hang" {
				return true
			}
		}
		return false
	}, 3*time.Second, 20*time.Millisecond)
	// The simulator records the hang when the connection closes, which can
	// be a moment before the client's flight returns: a refresh started in
	// that moment joins the ending flight and shares its error. So retry
	// until a new flight runs; only an unreachable error may come first.
	var tok *oauth.Token
	require.Eventually(t, func() bool {
		var err error
		tok, err = c.Refresh(t.Context(), sim.OAuthURL(), secret.New(pair.RefreshToken))
		if err != nil {
			assert.ErrorIs(t, err, oauth.ErrUnreachable, "only the ending flight's error")
		}
		return err == nil
	}, 3*time.Second, 20*time.Millisecond, "a new refresh works once the hung one has ended")
	assert.NotEmpty(t, tok.AccessToken.Reveal())
}

// G6 at the OAuth client: the first caller gives up while the refresh is
// under way; the request completes and the second caller, sharing it, gets
// the rotated pair — which would otherwise be lost, since the server has
// already spent the old refresh token.
func TestFirstCallerCancellingDoesNotFailTheSharedRefresh(t *testing.T) {
	sim, p := newSim(t)
	c := newTestClient(sim.OAuthURL())
	pair := p.IssueTokens(2)
	sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Delay: 300 * time.Millisecond})
	before := len(sim.Refreshes())

	first, cancel := context.WithCancel(t.Context())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.Refresh(first, sim.OAuthURL(), secret.New(pair.RefreshToken))
		firstErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	second := make(chan *oauth.Token, 1)
	go func() {
		tok, err := c.Refresh(t.Context(), sim.OAuthURL(), secret.New(pair.RefreshToken))
		assert.NoError(t, err)
		second <- tok
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-firstErr, context.Canceled)
	tok := <-second
	require.NotNil(t, tok)
	assert.NotEqual(t, pair.RefreshToken, tok.RefreshToken.Reveal())
	refreshes := sim.Refreshes()[before:]
	require.Len(t, refreshes, 1, "one request for both callers")
	assert.Equal(t, 200, refreshes[0].Status)
}

// F6: every way a refresh can fail on the wire — the client's own timeout
// (not the caller's deadline), a closed connection, an error page that
// quotes the request back — yields an error without the client secret or
// the refresh token, because both travel in the POST body, never in the
// URL that Go puts into transport errors.
func TestRefreshErrorsCarryNoSecret(t *testing.T) {
	const refresh = "sentinel-refresh-token-77"
	var log requestLog
	record := log.record
	echo := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		record(r)
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write(append([]byte("<html>you sent: "), body...))
	}
	cases := map[string]http.HandlerFunc{
		"client timeout": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			record(r)
			<-r.Context().Done()
		},
		"connection closed": func(w http.ResponseWriter, r *http.Request) {
			record(r)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		},
		"error page echoing the request": echo,
		"oauth error echoing the request": func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			record(r)
			form, _ := url.ParseQuery(string(body))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"bad token ` + form.Get("refresh_token") + ` for ` + form.Get("client_secret") + `"}`))
		},
	}
	for name, handler := range cases {
		t.Run(name, func(t *testing.T) {
			log.reset()
			srv := httptest.NewServer(handler)
			defer srv.Close()
			c := newTestClient(srv.URL)
			c.Timeout = 200 * time.Millisecond // the client's own limit fires, not the caller's
			_, err := c.Refresh(context.Background(), srv.URL, secret.New(refresh))
			require.Error(t, err)
			for _, s := range []string{clientSecret, refresh} {
				assert.NotContains(t, err.Error(), s)
			}
			got := log.queries()
			require.Len(t, got, 1)
			assert.Empty(t, got[0], "nothing in the token URL's query")
		})
	}
}
