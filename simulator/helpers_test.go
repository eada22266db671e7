package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	testClientID     = "app.test.client"
	testClientSecret = "s3cret-client-secret"
)

// newTestSim starts a simulator with local handlers allowed and a test app.
func newTestSim(t *testing.T, opts ...func(*Options)) *Simulator {
	t.Helper()
	o := Options{
		App: App{
			ClientID:     testClientID,
			ClientSecret: testClientSecret,
			Code:         "b24apps.leadcontacts",
			Version:      "1",
			Scope:        []string{"crm", "placement"},
			InstallURL:   "https://app.example.com/install",
		},
		AllowLocalHandlers: true,
		Logf:               t.Logf,
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(o)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// newTestPortal adds a seeded portal.
func newTestPortal(t *testing.T, s *Simulator) *Portal {
	t.Helper()
	p, err := s.AddPortal(PortalOptions{Seed: true})
	require.NoError(t, err)
	return p
}

// mustInstall installs the app (finished) as the seeded admin and returns
// the admin's tokens.
func mustInstall(t *testing.T, p *Portal) TokenPair {
	t.Helper()
	_, err := p.Install(SeedAdmin)
	require.NoError(t, err)
	return p.IssueTokens(SeedAdmin)
}

// newInstalledPortal returns a new simulator with one seeded portal on
// which the app is installed, and the app's tokens there.
func newInstalledPortal(t *testing.T) (*Simulator, *Portal, TokenPair) {
	t.Helper()
	s := newTestSim(t)
	p := newTestPortal(t, s)
	return s, p, mustInstall(t, p)
}

type restResp struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (r restResp) errCode() string {
	s, _ := r.Body["error"].(string)
	return s
}

func (r restResp) errDesc() string {
	s, _ := r.Body["error_description"].(string)
	return s
}

var testClient = &http.Client{Timeout: 10 * time.Second}

func decodeResp(t *testing.T, resp *http.Response) restResp {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := restResp{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&out.Body), "body: %s", raw)
	}
	return out
}

// callJSON POSTs a JSON body (with auth) to the portal's REST endpoint.
func callJSON(t *testing.T, p *Portal, method, token string, params map[string]any) restResp {
	t.Helper()
	body := map[string]any{}
	for k, v := range params {
		body[k] = v
	}
	if token != "" {
		body["auth"] = token
	}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := testClient.Post(p.RESTEndpoint()+method, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	return decodeResp(t, resp)
}

// callForm POSTs a form body to the portal's REST endpoint.
func callForm(t *testing.T, p *Portal, method string, form url.Values) restResp {
	t.Helper()
	resp, err := testClient.PostForm(p.RESTEndpoint()+method, form)
	require.NoError(t, err)
	return decodeResp(t, resp)
}

// tokenRequest calls the OAuth token endpoint with GET and the given query.
func tokenRequest(t *testing.T, s *Simulator, q url.Values) restResp {
	t.Helper()
	resp, err := testClient.Get(s.OAuthURL() + "/oauth/token/?" + q.Encode())
	require.NoError(t, err)
	return decodeResp(t, resp)
}

func refreshQuery(refresh string) url.Values {
	return url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {testClientID},
		"client_secret": {testClientSecret},
		"refresh_token": {refresh},
	}
}

func num(t *testing.T, v any) int {
	t.Helper()
	n, ok := v.(json.Number)
	require.True(t, ok, "not a JSON number: %#v", v)
	i, err := n.Int64()
	require.NoError(t, err)
	return int(i)
}

type jsonNumber = json.Number
