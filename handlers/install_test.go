package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

func TestInstallBindsWhatAppJSONDeclares(t *testing.T) {
	e := newTestEnv(t)
	p := e.install()
	assert.True(t, p.doc.Find("body").HasClass("install-finish"), "the page must call BX24.installFinish")
	assert.Equal(t, 4, p.doc.Find("#setup li").Length(), "the tab, the list menu, ONAPPUNINSTALL and the automation rule")
	assert.Contains(t, p.doc.Find("#setup").Text(), "Item “Remove all contacts” in the lead list's row menu", "the list menu's item, by its title and place")
	assert.Contains(t, p.doc.Find("#setup").Text(), "Automation rule “Remove all contacts”")
	assert.Contains(t, p.header.Get("Content-Security-Policy"), "frame-ancestors "+e.portal.URL())
	scripts := p.doc.Find("script[src]")
	assert.Equal(t, e.sim.JSURL(), scripts.First().AttrOr("src", ""))

	pls := e.portal.Placements()
	require.Len(t, pls, 2)
	assert.Equal(t, "CRM_LEAD_DETAIL_TAB", pls[0].Placement)
	assert.Equal(t, e.base+"/placements/lead-tab", pls[0].Handler)
	assert.Equal(t, "Contacts cleanup", pls[0].Title)
	assert.NotEmpty(t, pls[0].LangAll["ru"].Title)
	// The lead list's row menu, titled as the tab's button in every
	// language Bitrix24 offers.
	assert.Equal(t, "CRM_LEAD_LIST_MENU", pls[1].Placement)
	assert.Equal(t, e.base+"/placements/lead-list-menu", pls[1].Handler)
	assert.Equal(t, "Remove all contacts", pls[1].Title)
	assert.Len(t, pls[1].LangAll, 19)
	assert.Equal(t, "Отвязать все контакты", pls[1].LangAll["ru"].Title)
	assert.Equal(t, "إزالة جميع جهات الاتصال", pls[1].LangAll["ar"].Title)

	evs := map[string]string{}
	for _, ev := range e.portal.Events() {
		evs[ev.Event] = ev.Handler
	}
	assert.Equal(t, map[string]string{
		"ONAPPUNINSTALL": e.base + "/events/uninstall",
	}, evs, "ONAPPINSTALL is the console's, never bound by the app")

	stored := e.mustPortal(t)
	assert.Equal(t, e.portal.Domain(), stored.Domain)
	assert.Equal(t, e.portal.RESTEndpoint(), stored.RESTEndpoint)
	assert.Equal(t, e.sim.OAuthURL(), stored.OAuthServer)
	assert.True(t, stored.Active())
	assert.EqualValues(t, 1, stored.InstalledBy)
}

func TestReinstallIsIdempotentAndReplacesStaleHandlers(t *testing.T) {
	e := newInstalledEnv(t)
	// An older version bound the tab to another URL.
	admin := e.portal.IssueTokens(1)
	e.remember(admin.AccessToken, admin.RefreshToken)
	form := url.Values{"auth": {admin.AccessToken}, "PLACEMENT": {"CRM_LEAD_DETAIL_TAB"}, "HANDLER": {e.base + "/old-tab"}, "TITLE": {"Old"}}
	resp, err := http.PostForm(e.portal.RESTEndpoint()+"placement.bind", form)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, e.portal.Placements(), 3)

	p := e.install()
	assert.Contains(t, p.doc.Find("#setup").Text(), "updated to the new address")
	pls := e.portal.Placements()
	require.Len(t, pls, 2)
	assert.Equal(t, e.base+"/placements/lead-tab", pls[0].Handler)
	assert.Equal(t, e.base+"/placements/lead-list-menu", pls[1].Handler)

	p = e.install()
	assert.Equal(t, 3, p.doc.Find("#setup li .badge:contains('already set up')").Length())
	assert.Len(t, e.portal.Placements(), 2, "the tab and the list menu, once each")
	require.Len(t, e.portal.Events(), 1, "ONAPPINSTALL is the console's, never bound by the app")
	assert.Equal(t, "ONAPPUNINSTALL", e.portal.Events()[0].Event)
}

func TestInstallRefusesWhatTheOAuthServerDoesNotConfirm(t *testing.T) {
	e := newInstalledEnv(t)
	before := e.mustPortal(t)

	other, err := e.sim.AddPortal(simulator.PortalOptions{Seed: true})
	require.NoError(t, err)

	cases := map[string]func(f *simulator.Frame){
		"untrusted oauth server":     func(f *simulator.Frame) { f.Form.Set("SERVER_ENDPOINT", "https://oauth.evil.example/rest/") },
		"refresh token not issued":   func(f *simulator.Frame) { f.Form.Set("REFRESH_ID", "forged-refresh-token-123") },
		"another portal's member_id": func(f *simulator.Frame) { f.Form.Set("member_id", e.portal.MemberID()) },
		"no application token":       func(f *simulator.Frame) { f.Form.Del("APPLICATION_TOKEN") },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := other.BeginInstall(1)
			require.NoError(t, err)
			mutate(&f)
			p := e.postFrame(f)
			assert.GreaterOrEqual(t, p.status, 400)
			assert.Contains(t, p.header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
			e.assertPortalUnchanged(t, before)
		})
	}
	e.assertNotStored(t, other.MemberID())
}

func TestInstallExplainsABindingFailure(t *testing.T) {
	e := newTestEnv(t)
	e.portal.InjectFault(simulator.Fault{Method: "placement.bind", Status: 400, Code: "ERROR_PLACEMENT_MAX_COUNT", Description: "Too many placements"})
	f, err := e.portal.BeginInstall(1)
	require.NoError(t, err)
	p := e.postFrame(f)
	assert.Equal(t, http.StatusBadGateway, p.status)
	assert.Contains(t, p.doc.Find(".alert-danger").Text(), "could not set up its tab")
	assert.Contains(t, p.doc.Find(".alert-code").Text(), "ERROR_PLACEMENT_MAX_COUNT")
	assert.False(t, p.doc.Find("body").HasClass("install-finish"), "installFinish must not run after a failure")
	// The verified tokens were stored all the same: a retry can use them.
	stored := e.mustPortal(t)
	assert.True(t, stored.Active())
}

func TestOnAppInstallEvent(t *testing.T) {
	e := newTestEnv(t)
	// The admin started the install; the installer page never loaded (or
	// loaded after the event): ONAPPINSTALL alone must install the portal.
	f, err := e.portal.BeginInstall(1)
	require.NoError(t, err)
	e.rememberFrame(f)
	form := e.portal.OnAppInstallEvent(1)
	e.remember(form.Get("auth[access_token]"), form.Get("auth[refresh_token]"), form.Get("auth[application_token]"))
	p := e.postForm(e.base+"/events/install", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	stored := e.mustPortal(t)
	assert.True(t, stored.Active())
	assert.Len(t, e.portal.Placements(), 2)

	// A forged ONAPPINSTALL for the same member_id with a token the OAuth
	// server never issued changes nothing.
	forged := e.portal.OnAppInstallEvent(1)
	forged.Set("auth[refresh_token]", "forged-refresh-token-abc")
	forged.Set("auth[application_token]", "attacker-chosen-token")
	p = e.postForm(e.base+"/events/install", forged)
	assert.Equal(t, http.StatusForbidden, p.status)
	after := e.mustPortal(t)
	assert.Equal(t, stored.AppTokenHash, after.AppTokenHash)
	assert.Equal(t, stored.Version, after.Version)
}

func TestInstallerURLAnswersHEAD(t *testing.T) {
	e := newTestEnv(t)
	for _, path := range []string{"/install", "/placements/lead-tab", "/placements/lead-list-menu", "/events/install", "/events/uninstall"} {
		req, _ := http.NewRequest(http.MethodHead, e.base+path, nil)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

// assertPortalUnchanged checks that the stored portal is still the version
// read before, with the same application-token hash.
func (e *testEnv) assertPortalUnchanged(t testing.TB, before *store.Portal) {
	t.Helper()
	after := e.mustPortal(t)
	assert.Equal(t, before.AppTokenHash, after.AppTokenHash, "the application-token hash is unchanged")
	assert.Equal(t, before.Version, after.Version, "the portal's record is unchanged")
}

// assertNotStored checks that the app stored no portal for memberID.
func (e *testEnv) assertNotStored(t testing.TB, memberID string, msgAndArgs ...any) {
	t.Helper()
	_, err := e.st.Portal(context.Background(), memberID)
	assert.ErrorIs(t, err, store.ErrNotFound, msgAndArgs...)
}
