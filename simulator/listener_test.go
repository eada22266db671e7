package simulator

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// direct is a client that shows redirects instead of following them.
var direct = &http.Client{Timeout: testClient.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func portOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	return u.Port()
}

func get(t *testing.T, rawURL string) (int, string, string) {
	t.Helper()
	resp, err := direct.Get(rawURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// One port serves all of Bitrix24: the portal's pages and REST (as
// localhost), the OAuth server's token endpoint and REST, and the BX24 JS
// shim (as 127.0.0.1), told apart by the Host as real Bitrix24's hosts are.
func TestSharedListenerServesEverythingOnOnePort(t *testing.T) {
	s := newTestSim(t)
	p, err := s.AddPortal(PortalOptions{Host: "localhost", Seed: true, SharedListener: true})
	require.NoError(t, err)
	port := portOf(t, s.OAuthURL())
	require.Equal(t, "http://localhost:"+port, p.URL(), "the portal is on the simulator's port, by another name")
	assert.Equal(t, "http://127.0.0.1:"+port+"/api/v1/", s.JSURL())
	assert.Equal(t, "localhost:"+port, p.Domain())

	// Portal pages.
	status, ctype, body := get(t, p.URL()+"/crm/lead/details/1/")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "text/html; charset=utf-8", ctype)
	assert.Contains(t, body, `id="lang-picker"`)

	// The portal's REST, and the OAuth server's on the same port.
	tok := mustInstall(t, p)
	r := callJSON(t, p, "profile", tok.AccessToken, nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, "1", r.Body["result"].(map[string]any)["ID"])
	r = callJSON(t, p, "app.info", tok.AccessToken, nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	_, hasInstall := r.Body["result"].(map[string]any)["install"]
	assert.False(t, hasInstall, "the portal's own app.info, not the OAuth server's")
	resp, err := testClient.Get(s.OAuthURL() + "/rest/app.info?auth=" + tok.AccessToken)
	require.NoError(t, err)
	r = decodeResp(t, resp)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	install, _ := r.Body["result"].(map[string]any)["install"].(map[string]any)
	assert.Equal(t, p.URL(), install["uri"], "the OAuth server's app.info")

	// The token endpoint.
	r = tokenRequest(t, s, refreshQuery(tok.RefreshToken))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, p.RESTEndpoint(), r.Body["client_endpoint"])
	assert.Equal(t, s.OAuthURL()+"/rest/", r.Body["server_endpoint"])

	// The BX24 JS shim.
	status, ctype, body = get(t, s.JSURL())
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "application/javascript; charset=utf-8", ctype)
	assert.Contains(t, body, "BX24")

	// The OAuth server's name shows where the portal is.
	status, _, body = get(t, s.OAuthURL()+"/")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, p.URL()+"/")
}

// Tests run several portals on random ports: shared and separate
// listeners mix, and names that the Host cannot tell apart are refused.
func TestSharedListenerWithOtherPortals(t *testing.T) {
	s := newTestSim(t)
	shared, err := s.AddPortal(PortalOptions{Host: "localhost", Seed: true, SharedListener: true})
	require.NoError(t, err)
	own, err := s.AddPortal(PortalOptions{Seed: true})
	require.NoError(t, err)
	assert.NotEqual(t, portOf(t, s.OAuthURL()), portOf(t, own.URL()), "a portal without SharedListener has its own port")
	for _, p := range []*Portal{shared, own} {
		tok := mustInstall(t, p)
		r := callJSON(t, p, "profile", tok.AccessToken, nil)
		assert.Equal(t, http.StatusOK, r.Status, "%s: %s", p.URL(), r.Raw)
	}
	_, err = s.AddPortal(PortalOptions{Host: "localhost", SharedListener: true})
	assert.ErrorContains(t, err, "already answers")
	_, err = s.AddPortal(PortalOptions{SharedListener: true}) // 127.0.0.1, the OAuth server's name
	assert.ErrorContains(t, err, "OAuth server")

	// A shared portal can still move (its old name redirects).
	require.NoError(t, shared.MoveTo("localhost"))
	old := "http://localhost:" + portOf(t, s.OAuthURL())
	resp, err := direct.Get(old + "/crm/lead/details/1/")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, shared.URL()+"/crm/lead/details/1/", resp.Header.Get("Location"))
}

// Options.Addr fixes the port; the OAuth server names itself 127.0.0.1
// whatever the listen host, so a portal named localhost stays another site.
func TestSimulatorAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, ln.Close())
	for _, addr := range []string{"localhost:" + port, "0.0.0.0:0"} {
		s := newTestSim(t, func(o *Options) { o.Addr = addr })
		if strings.HasPrefix(addr, "localhost:") {
			assert.Equal(t, "http://127.0.0.1:"+port, s.OAuthURL())
		} else {
			assert.True(t, strings.HasPrefix(s.OAuthURL(), "http://127.0.0.1:"), s.OAuthURL())
		}
		status, _, _ := get(t, s.JSURL())
		assert.Equal(t, http.StatusOK, status)
		s.Close()
	}
	_, err = New(Options{App: App{ClientID: "a", ClientSecret: "b"}, Addr: "nonsense"})
	assert.ErrorContains(t, err, "listen address")
}
