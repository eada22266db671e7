package oauth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
)

// G5 at the OAuth client: the server hangs. Every waiter gives up at its
// own deadline; the shared request ends at the client's Timeout; the next
// attempt makes a new request, which works (the hung one never spent the
// token).
func TestHangingRefreshFailsWaitersAtTheirDeadline(t *testing.T) {
	sim, p := newSim(t)
	c := oauth.New("app.1", secret.New(clientSecret), []string{sim.OAuthURL()}, bitrix24.NewHTTPClient(true))
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
	c := oauth.New("app.1", secret.New(clientSecret), []string{sim.OAuthURL()}, bitrix24.NewHTTPClient(true))
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
