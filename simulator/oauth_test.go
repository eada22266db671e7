package simulator

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefreshCanKeepTheOldAccessToken is the other reading of the unsettled
// row: the refresh token is still single-use, the old access token lives on.
func TestRefreshCanKeepTheOldAccessToken(t *testing.T) {
	s := newTestSim(t, func(o *Options) { o.RefreshKeepsAccess = true })
	p := newTestPortal(t, s)
	old := mustInstall(t, p)
	r := tokenRequest(t, s, refreshQuery(old.RefreshToken))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	r = tokenRequest(t, s, refreshQuery(old.RefreshToken))
	assert.Equal(t, "invalid_grant", r.errCode(), "still single-use")
	r = callJSON(t, p, "profile", old.AccessToken, nil)
	assert.Equal(t, http.StatusOK, r.Status, "the old access token still works")
}

func TestRefreshIsSingleUseAndKillsOldAccessToken(t *testing.T) {
	s, p, old := newInstalledPortal(t)

	// The old access token works before the refresh.
	r := callJSON(t, p, "profile", old.AccessToken, nil)
	require.Equal(t, http.StatusOK, r.Status)

	r = tokenRequest(t, s, refreshQuery(old.RefreshToken))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	newAccess := r.Body["access_token"].(string)
	newRefresh := r.Body["refresh_token"].(string)
	assert.NotEqual(t, old.AccessToken, newAccess)
	assert.NotEqual(t, old.RefreshToken, newRefresh)
	assert.Equal(t, 3600, num(t, r.Body["expires_in"]))
	assert.InDelta(t, s.Now().Add(time.Hour).Unix(), num(t, r.Body["expires"]), 5)
	assert.Equal(t, "app", r.Body["scope"], "recorded: the literal app, not the granted scopes")
	assert.Equal(t, strings.TrimPrefix(s.OAuthURL(), "http://"), r.Body["domain"], "domain is the OAuth server")
	assert.Equal(t, s.OAuthURL()+"/rest/", r.Body["server_endpoint"])
	assert.Equal(t, p.RESTEndpoint(), r.Body["client_endpoint"])
	assert.Equal(t, p.MemberID(), r.Body["member_id"])
	assert.Equal(t, SeedAdmin, num(t, r.Body["user_id"]))
	assert.Equal(t, "F", r.Body["status"])

	// Second use of the same refresh token fails.
	r = tokenRequest(t, s, refreshQuery(old.RefreshToken))
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, "invalid_grant", r.errCode())

	// The access token issued with the used refresh token is dead; the new one works.
	r = callJSON(t, p, "profile", old.AccessToken, nil)
	assert.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Equal(t, "invalid_token", r.errCode())
	r = callJSON(t, p, "profile", newAccess, nil)
	assert.Equal(t, http.StatusOK, r.Status)

	refs := s.Refreshes()
	require.Len(t, refs, 2)
	assert.Equal(t, Refresh{Time: refs[0].Time, GrantType: "refresh_token", ClientID: testClientID,
		RefreshTokenPrefix: old.RefreshToken[:4], Status: 200, UserID: SeedAdmin, MemberID: p.MemberID()}, refs[0])
	assert.Equal(t, "invalid_grant", refs[1].Error)
	assert.Equal(t, 400, refs[1].Status)
}

func TestRefreshAcceptsPOSTForm(t *testing.T) {
	s, _, tok := newInstalledPortal(t)
	resp, err := testClient.PostForm(s.OAuthURL()+"/oauth/token/", refreshQuery(tok.RefreshToken))
	require.NoError(t, err)
	r := decodeResp(t, resp)
	assert.Equal(t, http.StatusOK, r.Status)
	assert.NotEmpty(t, r.Body["access_token"])
}

func TestAccessTokenExpiresBySimulatedClock(t *testing.T) {
	s, p, tok := newInstalledPortal(t)
	s.Advance(59 * time.Minute)
	require.Equal(t, http.StatusOK, callJSON(t, p, "app.info", tok.AccessToken, nil).Status)
	s.Advance(2 * time.Minute)
	r := callJSON(t, p, "app.info", tok.AccessToken, nil)
	assert.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Equal(t, "expired_token", r.errCode())
	assert.Equal(t, "The access token provided has expired.", r.errDesc())
	// The refresh token still works after the access token expired.
	r = tokenRequest(t, s, refreshQuery(tok.RefreshToken))
	assert.Equal(t, http.StatusOK, r.Status)
}

func TestRefreshTokenExpiresAfter180Days(t *testing.T) {
	s, _, tok := newInstalledPortal(t)
	s.Advance(180*24*time.Hour + time.Minute)
	r := tokenRequest(t, s, refreshQuery(tok.RefreshToken))
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, "invalid_grant", r.errCode())
}

func TestTokenEndpointErrors(t *testing.T) {
	s, _, tok := newInstalledPortal(t)
	tests := []struct {
		name   string
		mutate func(q url.Values)
		status int
		code   string
	}{
		{"wrong secret", func(q url.Values) { q.Set("client_secret", "nope") }, 400, "invalid_client"},
		{"wrong client id", func(q url.Values) { q.Set("client_id", "other.app") }, 200, "wrong_client"},
		{"missing refresh token", func(q url.Values) { q.Del("refresh_token") }, 400, "invalid_request"},
		{"missing client id", func(q url.Values) { q.Del("client_id") }, 400, "invalid_request"},
		{"unknown grant type", func(q url.Values) { q.Set("grant_type", "password") }, 400, "invalid_request"},
		{"unknown refresh token", func(q url.Values) { q.Set("refresh_token", "deadbeef") }, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := refreshQuery(tok.RefreshToken)
			tt.mutate(q)
			r := tokenRequest(t, s, q)
			assert.Equal(t, tt.status, r.Status, "%s", r.Raw)
			assert.Equal(t, tt.code, r.errCode())
		})
	}
	// None of the failures consumed the refresh token.
	assert.Equal(t, http.StatusOK, tokenRequest(t, s, refreshQuery(tok.RefreshToken)).Status)
}

func TestRefreshAfterUninstallIsInvalidGrant(t *testing.T) {
	s, p, tok := newInstalledPortal(t)
	require.NoError(t, p.Uninstall(t.Context(), false))
	r := tokenRequest(t, s, refreshQuery(tok.RefreshToken))
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, "invalid_grant", r.errCode())
}

func TestAuthorizationCodeGrant(t *testing.T) {
	s := newTestSim(t, func(o *Options) { o.App.RedirectURI = "https://app.example.com/oauth/callback" })
	p := newTestPortal(t, s)
	mustInstall(t, p)

	// The portal's authorize page redirects to the app with a code.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(p.URL() + "/oauth/authorize/?client_id=" + testClientID + "&state=xyz&user=2")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "app.example.com", loc.Host)
	assert.Equal(t, "xyz", loc.Query().Get("state"))
	assert.Equal(t, p.MemberID(), loc.Query().Get("member_id"))
	assert.Equal(t, p.Domain(), loc.Query().Get("domain"))

	q := url.Values{"grant_type": {"authorization_code"}, "client_id": {testClientID}, "client_secret": {testClientSecret}, "code": {loc.Query().Get("code")}}
	r := tokenRequest(t, s, q)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, SeedSales, num(t, r.Body["user_id"]))
	// Codes are single-use and live 30 s.
	assert.Equal(t, "invalid_grant", tokenRequest(t, s, q).errCode())
	q.Set("code", p.IssueAuthCode(SeedAdmin))
	s.Advance(31 * time.Second)
	assert.Equal(t, "invalid_grant", tokenRequest(t, s, q).errCode())
}

func TestOAuthServerAppInfo(t *testing.T) {
	s, p, tok := newInstalledPortal(t)
	resp, err := testClient.Get(s.OAuthURL() + "/rest/app.info?auth=" + tok.AccessToken)
	require.NoError(t, err)
	r := decodeResp(t, resp)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	res := r.Body["result"].(map[string]any)
	assert.Equal(t, "b24apps.leadcontacts", res["CODE"])
	assert.Equal(t, true, res["INSTALLED"])
	install := res["install"].(map[string]any)
	assert.Equal(t, true, install["installed"])
	assert.Equal(t, p.URL(), install["uri"])
	assert.Equal(t, p.MemberID(), install["member_id"])

	resp, err = testClient.Get(s.OAuthURL() + "/rest/app.info?auth=bogus")
	require.NoError(t, err)
	r = decodeResp(t, resp)
	assert.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Equal(t, "invalid_token", r.errCode())
}

func TestTokensArePerPortal(t *testing.T) {
	s := newTestSim(t)
	a := newTestPortal(t, s)
	b := newTestPortal(t, s)
	tokA := mustInstall(t, a)
	mustInstall(t, b)
	r := callJSON(t, b, "profile", tokA.AccessToken, nil)
	assert.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Equal(t, "invalid_token", r.errCode())
	assert.NotEqual(t, a.URL(), b.URL())
}

func TestOAuthFaultInjection(t *testing.T) {
	s, _, tok := newInstalledPortal(t)
	s.InjectOAuthFault(Fault{Method: "refresh_token", Status: 503, RawBody: "<html>busy</html>"})
	r := tokenRequest(t, s, refreshQuery(tok.RefreshToken))
	assert.Equal(t, 503, r.Status)
	assert.Contains(t, string(r.Raw), "busy")
	// The faulted request did not consume the token.
	assert.Equal(t, http.StatusOK, tokenRequest(t, s, refreshQuery(tok.RefreshToken)).Status)
	require.Len(t, s.Refreshes(), 2)
	assert.Equal(t, 503, s.Refreshes()[0].Status)
}

func TestConcurrentRefreshesOnlyOneWins(t *testing.T) {
	s, _, tok := newInstalledPortal(t)
	const n = 20
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := testClient.PostForm(s.OAuthURL()+"/oauth/token/", refreshQuery(tok.RefreshToken))
			if !assert.NoError(t, err) {
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	assert.Equal(t, map[int]int{200: 1, 400: n - 1}, count)
}

func TestCloseReleasesHangingRequests(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	p.InjectFault(Fault{Hang: true})
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(p.RESTEndpoint() + "profile")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("request still hanging after Close")
	}
}
