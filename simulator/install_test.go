package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBeginInstallFrame(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)

	_, err := p.BeginInstall(SeedSales)
	require.Error(t, err, "only admins install")

	f, err := p.BeginInstall(SeedAdmin)
	require.NoError(t, err)
	assert.False(t, p.Installed())
	assert.True(t, p.InstallStarted())
	assert.Equal(t, SeedAdmin, f.UserID)

	u, err := url.Parse(f.URL)
	require.NoError(t, err)
	assert.Equal(t, "app.example.com", u.Host)
	assert.Equal(t, f.Query, u.Query(), "query fields are appended to the URL")
	assert.ElementsMatch(t, []string{"DOMAIN", "PROTOCOL", "LANG", "APP_SID"}, keys(f.Query))
	assert.Equal(t, p.Domain(), f.Query.Get("DOMAIN"))
	assert.Equal(t, "0", f.Query.Get("PROTOCOL"))
	assert.Equal(t, "en", f.Query.Get("LANG"))

	assert.ElementsMatch(t, []string{"AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "SERVER_ENDPOINT", "member_id", "status",
		"PLACEMENT", "APPLICATION_TOKEN", "APPLICATION_SCOPE"}, keys(f.Form), "recorded: the installer gets no PLACEMENT_OPTIONS")
	assert.Equal(t, "DEFAULT", f.Form.Get("PLACEMENT"))
	assert.Equal(t, "3600", f.Form.Get("AUTH_EXPIRES"))
	assert.Equal(t, s.OAuthURL()+"/rest/", f.Form.Get("SERVER_ENDPOINT"))
	assert.Equal(t, p.MemberID(), f.Form.Get("member_id"))
	assert.Equal(t, "F", f.Form.Get("status"))
	assert.Equal(t, "crm,placement", f.Form.Get("APPLICATION_SCOPE"))
	assert.Equal(t, p.ApplicationToken(), f.Form.Get("APPLICATION_TOKEN"))
	assert.NotEqual(t, f.Query.Get("APP_SID"), f.Form.Get("APPLICATION_TOKEN"), "APP_SID is not the application token")

	// The installer's token works before installFinish; app.info says not installed.
	r := callJSON(t, p, "app.info", f.Form.Get("AUTH_ID"), nil)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, false, r.Body["result"].(map[string]any)["INSTALLED"])
	p.FinishInstall()
	assert.True(t, p.Installed())

	// Running the installer again is a new unfinished install with a new
	// application token; bindings and old tokens survive.
	require.Equal(t, 200, callJSON(t, p, "placement.bind", f.Form.Get("AUTH_ID"), map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"}).Status)
	oldAppToken := p.ApplicationToken()
	f2, err := p.BeginInstall(SeedAdmin)
	require.NoError(t, err)
	assert.False(t, p.Installed())
	assert.NotEqual(t, oldAppToken, f2.Form.Get("APPLICATION_TOKEN"))
	assert.Len(t, p.Placements(), 1)
	assert.Equal(t, 200, callJSON(t, p, "profile", f.Form.Get("AUTH_ID"), nil).Status)
}

func keys(v url.Values) []string {
	out := make([]string, 0, len(v))
	for k := range v {
		out = append(out, k)
	}
	return out
}

func TestPlacementBindRules(t *testing.T) {
	tests := []struct {
		name       string
		allowLocal bool
		scope      []string
		user       int
		params     map[string]any
		status     int
		code       string
	}{
		{"ok", false, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"}, 200, ""},
		{"lower-case keys ok", false, nil, SeedAdmin, map[string]any{"placement": "CRM_LEAD_DETAIL_TAB", "handler": "https://app.example.com/tab"}, 200, ""},
		{"non-admin", false, nil, SeedSales, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"}, 403, "ACCESS_DENIED"},
		{"missing placement", false, nil, SeedAdmin, map[string]any{"HANDLER": "https://app.example.com/tab"}, 200, "ERROR_ARGUMENT"},
		{"unknown placement", false, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_NOWHERE", "HANDLER": "https://app.example.com/tab"}, 400, "ERROR_PLACEMENT_NOT_FOUND"},
		{"crm scope missing", false, []string{"placement"}, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"}, 400, "ERROR_PLACEMENT_NOT_FOUND"},
		{"placement scope missing", false, []string{"crm"}, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"}, 403, "insufficient_scope"},
		{"localhost rejected", false, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "http://localhost:8080/tab"}, 400, "ERROR_WRONG_HANDLER_URL"},
		{"loopback rejected", false, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "http://127.0.0.1:8080/tab"}, 400, "ERROR_WRONG_HANDLER_URL"},
		{"private IP rejected", false, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "http://10.0.0.5/tab"}, 400, "ERROR_WRONG_HANDLER_URL"},
		{"no domain rejected", false, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "http://intranet/tab"}, 400, "ERROR_WRONG_HANDLER_URL"},
		{"ftp rejected", false, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "ftp://app.example.com/tab"}, 400, "ERROR_UNSUPPORTED_PROTOCOL"},
		{"localhost allowed", true, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "http://127.0.0.1:8080/tab"}, 200, ""},
		{"user mode", false, nil, SeedAdmin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab", "USER_ID": 2}, 400, "ERROR_PLACEMENT_USER_MODE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSim(t, func(o *Options) {
				o.AllowLocalHandlers = tt.allowLocal
				if tt.scope != nil {
					o.App.Scope = tt.scope
				}
			})
			p := newTestPortal(t, s)
			mustInstall(t, p)
			r := callJSON(t, p, "placement.bind", p.IssueTokens(tt.user).AccessToken, tt.params)
			assert.Equal(t, tt.status, r.Status, "%s", r.Raw)
			assert.Equal(t, tt.code, r.errCode())
			if tt.code == "" {
				assert.Equal(t, true, r.Body["result"])
				assert.Len(t, p.Placements(), 1)
			} else {
				assert.Empty(t, p.Placements())
			}
		})
	}
}

func TestPlacementLifecycle(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	tok := mustInstall(t, p).AccessToken
	bind := map[string]any{
		"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab", "TITLE": "Contacts tool",
		"LANG_ALL": map[string]any{"de": map[string]any{"TITLE": "Kontakte"}},
	}
	require.Equal(t, 200, callJSON(t, p, "placement.bind", tok, bind).Status)
	r := callJSON(t, p, "placement.bind", tok, bind)
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, "ERROR_CORE", r.errCode())
	assert.Equal(t, "Unable to set placement handler: Handler already binded", r.errDesc())

	pl := p.Placements()
	require.Len(t, pl, 1)
	assert.Equal(t, "Contacts tool", pl[0].Title)
	assert.Equal(t, "Kontakte", pl[0].LangAll["de"].Title)

	r = callJSON(t, p, "placement.get", tok, nil)
	require.Equal(t, 200, r.Status)
	got := r.Body["result"].([]any)[0].(map[string]any)
	assert.Equal(t, "CRM_LEAD_DETAIL_TAB", got["placement"])
	assert.Equal(t, []any{}, got["options"])
	assert.Equal(t, "Kontakte", got["langAll"].(map[string]any)["de"].(map[string]any)["TITLE"])

	r = callJSON(t, p, "placement.list", p.IssueTokens(SeedViewer).AccessToken, nil)
	require.Equal(t, 200, r.Status)
	assert.Contains(t, r.Body["result"], "CRM_LEAD_DETAIL_TAB")

	r = callJSON(t, p, "placement.unbind", tok, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB"})
	require.Equal(t, 200, r.Status)
	assert.Equal(t, map[string]any{"count": jsonNum(1)}, r.Body["result"])
	assert.Empty(t, p.Placements())
}

func TestEventBindRules(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	admin := mustInstall(t, p).AccessToken
	sales := p.IssueTokens(SeedSales).AccessToken
	tests := []struct {
		name   string
		token  string
		params map[string]any
		status int
		code   string
	}{
		{"ok", admin, map[string]any{"event": "ONAPPUNINSTALL", "handler": "https://app.example.com/uninstall"}, 200, ""},
		{"duplicate", admin, map[string]any{"event": "onappuninstall", "handler": "https://app.example.com/uninstall"}, 400, "ERROR_CORE"},
		{"unknown event", admin, map[string]any{"event": "ONSOMETHING", "handler": "https://app.example.com/x"}, 400, "ERROR_EVENT_NOT_FOUND"},
		{"non-admin as self", sales, map[string]any{"event": "ONCRMLEADUPDATE", "handler": "https://app.example.com/x"}, 200, ""},
		{"non-admin as other user", sales, map[string]any{"event": "ONCRMLEADUPDATE", "handler": "https://app.example.com/y", "auth_type": 1}, 403, "ACCESS_DENIED"},
		{"non-admin offline", sales, map[string]any{"event": "ONCRMLEADUPDATE", "handler": "https://app.example.com/z", "event_type": "offline"}, 403, "ACCESS_DENIED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := callJSON(t, p, "event.bind", tt.token, tt.params)
			assert.Equal(t, tt.status, r.Status, "%s", r.Raw)
			assert.Equal(t, tt.code, r.errCode())
		})
	}
	r := callJSON(t, p, "event.get", admin, nil)
	require.Len(t, r.Body["result"], 2)
	assert.Equal(t, "ONAPPUNINSTALL", r.Body["result"].([]any)[0].(map[string]any)["event"])
	r = callJSON(t, p, "event.unbind", admin, map[string]any{"event": "ONCRMLEADUPDATE", "handler": "https://app.example.com/x"})
	assert.Equal(t, map[string]any{"count": jsonNum(1)}, r.Body["result"])
}

// eventSink records form posts.
type eventSink struct {
	mu    sync.Mutex
	forms []url.Values
	srv   *httptest.Server
}

func newEventSink(t *testing.T, status int) *eventSink {
	t.Helper()
	es := &eventSink{}
	es.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		assert.NoError(t, err)
		es.mu.Lock()
		es.forms = append(es.forms, form)
		es.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(es.srv.Close)
	return es
}

func (es *eventSink) got() []url.Values {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]url.Values(nil), es.forms...)
}

func TestUninstallRevokesAndDelivers(t *testing.T) {
	s, p, tok := newInstalledPortal(t)
	sink := newEventSink(t, http.StatusOK)
	appToken := p.ApplicationToken()
	require.Equal(t, 200, callJSON(t, p, "event.bind", tok.AccessToken, map[string]any{"event": "ONAPPUNINSTALL", "handler": sink.srv.URL + "/uninstall"}).Status)
	require.Equal(t, 200, callJSON(t, p, "placement.bind", tok.AccessToken, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": sink.srv.URL + "/tab"}).Status)
	other := p.IssueTokens(SeedSales)

	require.NoError(t, p.Uninstall(t.Context(), true))

	assert.False(t, p.Installed())
	assert.Empty(t, p.Placements())
	assert.Empty(t, p.Events())
	assert.Empty(t, p.ApplicationToken())
	for _, at := range []string{tok.AccessToken, other.AccessToken} {
		r := callJSON(t, p, "profile", at, nil)
		assert.Equal(t, http.StatusUnauthorized, r.Status)
		assert.Equal(t, "invalid_token", r.errCode(), "recorded: a token of an uninstalled app is unknown")
	}
	forms := sink.got()
	require.Len(t, forms, 1)
	f := forms[0]
	assert.Equal(t, "ONAPPUNINSTALL", f.Get("event"))
	assert.Equal(t, "1", f.Get("data[CLEAN]"))
	assert.Equal(t, "en", f.Get("data[LANGUAGE_ID]"))
	assert.NotEmpty(t, f.Get("ts"))
	assert.NotEmpty(t, f.Get("event_handler_id"))
	assert.Equal(t, p.Domain(), f.Get("auth[domain]"))
	assert.Equal(t, p.MemberID(), f.Get("auth[member_id]"))
	assert.Equal(t, appToken, f.Get("auth[application_token]"))
	assert.Equal(t, p.RESTEndpoint(), f.Get("auth[client_endpoint]"))
	assert.Equal(t, s.OAuthURL()+"/rest/", f.Get("auth[server_endpoint]"))
	assert.Empty(t, f.Get("auth[access_token]"), "no usable token after uninstall")
	require.Len(t, p.Deliveries(), 1)
	assert.Equal(t, 200, p.Deliveries()[0].Status)

	// Reinstall gives a new application token.
	mustInstall(t, p)
	assert.NotEqual(t, appToken, p.ApplicationToken())
}

func TestUninstallReportsHandlerFailure(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	sink := newEventSink(t, http.StatusForbidden)
	require.Equal(t, 200, callJSON(t, p, "event.bind", tok.AccessToken, map[string]any{"event": "ONAPPUNINSTALL", "handler": sink.srv.URL}).Status)
	err := p.Uninstall(t.Context(), false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403")
	assert.Equal(t, "0", sink.got()[0].Get("data[CLEAN]"))
}

func TestEventsWaitForInstallFinish(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	f, err := p.BeginInstall(SeedAdmin)
	require.NoError(t, err)
	sink := newEventSink(t, http.StatusOK)
	require.Equal(t, 200, callJSON(t, p, "event.bind", f.Form.Get("AUTH_ID"), map[string]any{"event": "ONCRMLEADUPDATE", "handler": sink.srv.URL}).Status)
	require.Equal(t, 200, callJSON(t, p, "placement.bind", f.Form.Get("AUTH_ID"), map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": sink.srv.URL}).Status)

	require.NoError(t, p.Fire(t.Context(), "ONCRMLEADUPDATE", url.Values{"FIELDS[ID]": {"1"}}))
	assert.Empty(t, sink.got(), "no events before installFinish")
	_, err = p.OpenLeadTab(SeedAdmin, 1, "")
	assert.Error(t, err, "placements hidden before installFinish")

	p.FinishInstall()
	require.NoError(t, p.Fire(t.Context(), "ONCRMLEADUPDATE", url.Values{"FIELDS[ID]": {"1"}}))
	require.Len(t, sink.got(), 1)
	assert.Equal(t, "1", sink.got()[0].Get("data[FIELDS][ID]"))
	_, err = p.OpenLeadTab(SeedAdmin, 1, "")
	assert.NoError(t, err)
}

func TestOpenLeadTabFrame(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	_, err := p.OpenLeadTab(SeedSales, 1, "de")
	require.Error(t, err, "no placement bound")
	require.Equal(t, 200, callJSON(t, p, "placement.bind", tok.AccessToken, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab?x=1"}).Status)

	f, err := p.OpenLeadTab(SeedSales, 4, "de")
	require.NoError(t, err)
	u, err := url.Parse(f.URL)
	require.NoError(t, err)
	assert.Equal(t, "1", u.Query().Get("x"), "handler query kept")
	assert.Equal(t, "de", u.Query().Get("LANG"))
	assert.Equal(t, p.Domain(), u.Query().Get("DOMAIN"))
	assert.NotEmpty(t, u.Query().Get("APP_SID"))
	for _, k := range []string{"DOMAIN", "PROTOCOL", "LANG", "APP_SID"} {
		assert.Empty(t, f.Form.Get(k), "%s is a query field, not a body field", k)
	}
	assert.Equal(t, "CRM_LEAD_DETAIL_TAB", f.Form.Get("PLACEMENT"))
	assert.Equal(t, `{"ID":"4","URI":"\/crm\/lead\/details\/4\/"}`, f.Form.Get("PLACEMENT_OPTIONS"),
		"a JSON string with the ID as a string and the card's path, slashes escaped as PHP does")
	var opts map[string]any
	require.NoError(t, json.Unmarshal([]byte(f.Form.Get("PLACEMENT_OPTIONS")), &opts))
	assert.Equal(t, "4", opts["ID"])
	assert.Equal(t, "/crm/lead/details/4/", opts["URI"])
	assert.Equal(t, p.ApplicationToken(), f.Form.Get("APPLICATION_TOKEN"))
	// The frame token belongs to the user who opened the tab.
	r := callJSON(t, p, "profile", f.Form.Get("AUTH_ID"), nil)
	assert.Equal(t, "2", r.Body["result"].(map[string]any)["ID"])
	assert.Equal(t, SeedSales, f.UserID)

	p.AddUser(User{ID: 8, Name: "No", LastName: "Rights"})
	_, err = p.OpenLeadTab(8, 4, "")
	assert.Error(t, err, "user cannot see the lead")
	_, err = p.OpenLeadTab(SeedSales, 999, "")
	assert.Error(t, err, "no such lead")
}

func TestOnAppInstallEvent(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	mustInstall(t, p)
	f := p.OnAppInstallEvent(SeedAdmin)
	assert.Equal(t, "ONAPPINSTALL", f.Get("event"))
	assert.Equal(t, "Y", f.Get("data[INSTALLED]"))
	assert.Equal(t, "1", f.Get("data[VERSION]"))
	assert.Equal(t, p.ApplicationToken(), f.Get("auth[application_token]"))
	assert.Equal(t, p.MemberID(), f.Get("auth[member_id]"))
	assert.Equal(t, p.Domain(), f.Get("auth[domain]"))
	assert.Equal(t, "3600", f.Get("auth[expires_in]"))
	r := callJSON(t, p, "profile", f.Get("auth[access_token]"), nil)
	assert.Equal(t, 200, r.Status)
	assert.Equal(t, 200, tokenRequest(t, s, refreshQuery(f.Get("auth[refresh_token]"))).Status)
}
