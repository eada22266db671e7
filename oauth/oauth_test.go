package oauth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

func TestRefreshReturnsTheVouchedPortal(t *testing.T) {
	sim, p := newSim(t)
	c := oauth.New("app.1", secret.New(clientSecret), []string{sim.OAuthURL()}, bitrix24.NewHTTPClient(true))
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
	c := oauth.New("app.1", secret.New(clientSecret), []string{sim.OAuthURL()}, bitrix24.NewHTTPClient(true))
	pair := p.IssueTokens(2)
	before := len(sim.Refreshes())
	// Slow enough that every caller joins before the answer: one arriving
	// after it would find the single-use token spent.
	sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tok, err := c.Refresh(context.Background(), sim.OAuthURL(), secret.New(pair.RefreshToken))
			if err == nil {
				results[i] = tok.AccessToken.Reveal()
			}
		}(i)
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
	c := oauth.New("app.1", secret.New(clientSecret), []string{sim.OAuthURL()}, bitrix24.NewHTTPClient(true))
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
	c := oauth.New("app.1", secret.New(clientSecret), []string{hang.URL}, bitrix24.NewHTTPClient(true))
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
	c = oauth.New("app.1", secret.New(clientSecret), []string{html.URL}, bitrix24.NewHTTPClient(true))
	_, err = c.Refresh(context.Background(), html.URL, secret.New("r"))
	assert.ErrorIs(t, err, oauth.ErrUnreachable)
}
