package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeApp is a minimal app server doing what our real app does: the installer
// binds the tab and ONAPPUNINSTALL with the installer's token, the tab handler
// removes the lead's contacts with the user's token.
type fakeApp struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	appToken map[string]string // member_id -> application_token
	results  []string
}

func newFakeApp(t *testing.T) *fakeApp {
	a := &fakeApp{t: t, appToken: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /install", a.install)
	mux.HandleFunc("POST /tab", a.tab)
	mux.HandleFunc("POST /uninstall", a.uninstall)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeApp) rest(endpoint, method string, params url.Values) map[string]any {
	resp, err := http.PostForm(endpoint+method, params)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(a.t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func (a *fakeApp) install(w http.ResponseWriter, r *http.Request) {
	endpoint := "http://" + r.URL.Query().Get("DOMAIN") + "/rest/"
	auth := r.PostFormValue("AUTH_ID")
	a.mu.Lock()
	a.appToken[r.PostFormValue("member_id")] = r.PostFormValue("APPLICATION_TOKEN")
	a.mu.Unlock()
	res := a.rest(endpoint, "batch", url.Values{"auth": {auth}, "halt": {"1"},
		"cmd[tab]":       {"placement.bind?PLACEMENT=CRM_LEAD_DETAIL_TAB&HANDLER=" + url.QueryEscape(a.srv.URL+"/tab") + "&TITLE=Contacts"},
		"cmd[uninstall]": {"event.bind?event=ONAPPUNINSTALL&handler=" + url.QueryEscape(a.srv.URL+"/uninstall")},
	})
	assert.Equal(a.t, []any{}, res["result"].(map[string]any)["result_error"])
	w.WriteHeader(http.StatusOK)
}

func (a *fakeApp) tab(w http.ResponseWriter, r *http.Request) {
	var opts struct{ ID string }
	require.NoError(a.t, json.Unmarshal([]byte(r.PostFormValue("PLACEMENT_OPTIONS")), &opts))
	a.mu.Lock()
	okToken := a.appToken[r.PostFormValue("member_id")] == r.PostFormValue("APPLICATION_TOKEN")
	a.mu.Unlock()
	require.True(a.t, okToken)
	res := a.rest("http://"+r.URL.Query().Get("DOMAIN")+"/rest/", "crm.lead.contact.items.delete", url.Values{"auth": {r.PostFormValue("AUTH_ID")}, "id": {opts.ID}})
	a.mu.Lock()
	if e, ok := res["error"]; ok {
		a.results = append(a.results, "error:"+e.(string))
	} else {
		a.results = append(a.results, "ok")
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (a *fakeApp) uninstall(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.appToken[r.PostFormValue("auth[member_id]")] != r.PostFormValue("auth[application_token]") {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	a.results = append(a.results, "uninstalled")
}

// post sends a frame POST exactly as the browser would.
func postFrame(t *testing.T, f Frame) {
	t.Helper()
	resp, err := http.Post(f.URL, "application/x-www-form-urlencoded", strings.NewReader(f.Form.Encode()))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestEndToEndWithFakeApp(t *testing.T) {
	app := newFakeApp(t)
	s := newTestSim(t, func(o *Options) { o.App.InstallURL = app.srv.URL + "/install" })
	p := newTestPortal(t, s)

	f, err := p.BeginInstall(SeedAdmin)
	require.NoError(t, err)
	postFrame(t, f)
	p.FinishInstall() // the installer page's BX24.installFinish()
	require.Len(t, p.Placements(), 1)

	// A read-only user is refused by Bitrix24; a sales user succeeds.
	f, err = p.OpenLeadTab(SeedViewer, SeedLeadThreeContacts, "en")
	require.NoError(t, err)
	postFrame(t, f)
	f, err = p.OpenLeadTab(SeedSales, SeedLeadThreeContacts, "en")
	require.NoError(t, err)
	postFrame(t, f)
	assert.Empty(t, p.LeadContacts(SeedLeadThreeContacts))

	require.NoError(t, p.Uninstall(t.Context(), false))
	assert.Equal(t, []string{"error:ACCESS_DENIED", "ok", "uninstalled"}, app.results)

	calls := p.CallsTo("crm.lead.contact.items.delete")
	require.Len(t, calls, 2)
	assert.Equal(t, []int{SeedViewer, SeedSales}, []int{calls[0].UserID, calls[1].UserID})
}

func TestLocalhostPortalIsAnotherSite(t *testing.T) {
	s := newTestSim(t)
	p, err := s.AddPortal(PortalOptions{Host: "localhost", Lang: "de", MemberID: "fixed-member", Enterprise: true})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(p.URL(), "http://localhost:"), p.URL())
	assert.Equal(t, "fixed-member", p.MemberID())
	p.AddUser(User{ID: 1, Name: "A", Admin: true})
	_, err = p.BeginInstall(1)
	require.NoError(t, err)
	p.FinishInstall()
	tok := p.IssueTokens(1)
	r := callJSON(t, p, "app.info", tok.AccessToken, nil)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "de", r.Body["result"].(map[string]any)["LANGUAGE_ID"])
	assert.Equal(t, "ent", r.Body["result"].(map[string]any)["LICENSE_FAMILY"])
}

func TestInstallWithoutInstallerURL(t *testing.T) {
	s := newTestSim(t, func(o *Options) { o.App.InstallURL = "" })
	p := newTestPortal(t, s)
	_, err := p.BeginInstall(SeedAdmin)
	require.Error(t, err)
	f, err := p.Install(SeedAdmin)
	require.NoError(t, err)
	assert.Empty(t, f.URL)
	assert.True(t, p.Installed())
	assert.NotEmpty(t, p.ApplicationToken())
}
