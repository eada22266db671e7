package simulator

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       testClient.Timeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func TestMoveToRedirectsTheOldAddress(t *testing.T) {
	s, p, admin := newInstalledPortal(t)
	oldEndpoint, oldDomain := p.RESTEndpoint(), p.Domain()

	require.NoError(t, p.MoveTo("localhost"))
	assert.NotEqual(t, oldEndpoint, p.RESTEndpoint())
	assert.True(t, strings.HasPrefix(p.Domain(), "localhost:"), p.Domain())

	// The old address answers 302 to the same method on the new one and
	// runs nothing.
	resp, err := noRedirects.Post(oldEndpoint+"crm.lead.get?x=1", "application/json",
		bytes.NewReader([]byte(`{"id":1,"auth":"`+admin.AccessToken+`"}`)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, p.RESTEndpoint()+"crm.lead.get?x=1", resp.Header.Get("Location"))
	calls := p.CallsTo("crm.lead.get")
	require.Len(t, calls, 1)
	assert.Equal(t, http.StatusFound, calls[0].HTTPStatus)
	assert.Empty(t, calls[0].TokenPrefix, "the old address does not read the token")

	// Same member_id, same tokens, new address everywhere.
	r := callJSON(t, p, "profile", admin.AccessToken, nil)
	assert.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	ev := p.OnAppInstallEvent(SeedAdmin)
	assert.Equal(t, p.Domain(), ev.Get("auth[domain]"))
	assert.Equal(t, p.RESTEndpoint(), ev.Get("auth[client_endpoint]"))
	tok := tokenRequest(t, s, refreshQuery(admin.RefreshToken))
	require.Equal(t, http.StatusOK, tok.Status, string(tok.Raw))
	assert.Equal(t, p.RESTEndpoint(), tok.Body["client_endpoint"])
	assert.Equal(t, p.MemberID(), tok.Body["member_id"])

	// A second move: every old address points at the current one.
	require.NoError(t, p.MoveTo(""))
	resp, err = noRedirects.Post(oldEndpoint+"profile", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, p.RESTEndpoint()+"profile", resp.Header.Get("Location"))
	assert.NotEqual(t, oldDomain, p.Domain())
}

func TestFaultProbabilityAndAfterRun(t *testing.T) {
	_, p, admin := newInstalledPortal(t)
	p.SetRateLimit(0, 0)

	p.InjectFault(Fault{Method: "profile", Times: 1 << 20, Probability: 0.3, Status: 503, Code: "QUERY_LIMIT_EXCEEDED"})
	failed := 0
	const n = 400
	for range n {
		if callJSON(t, p, "profile", admin.AccessToken, nil).Status == 503 {
			failed++
		}
	}
	// 400 draws at p = 0.3: mean 120, σ ≈ 9.2; ±5σ never flakes.
	assert.InDelta(t, 120, failed, 46)

	// AfterRun: the call takes effect, the answer is a 500 without a code.
	lead := SeedLeadThreeContacts
	require.Len(t, p.LeadContacts(lead), 3)
	p.InjectFault(Fault{Method: "crm.lead.contact.items.delete", AfterRun: true, Status: 500, RawBody: "<html>oops</html>"})
	r := callJSON(t, p, "crm.lead.contact.items.delete", admin.AccessToken, map[string]any{"id": lead})
	assert.Equal(t, 500, r.Status)
	assert.Empty(t, p.LeadContacts(lead), "the delete ran before the fault answered")

	// A redirect fault names any Location.
	p.InjectFault(Fault{Method: "crm.lead.get", Location: "https://evil.example/rest/crm.lead.get"})
	resp, err := noRedirects.Post(p.RESTEndpoint()+"crm.lead.get", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "https://evil.example/rest/crm.lead.get", resp.Header.Get("Location"))
}
