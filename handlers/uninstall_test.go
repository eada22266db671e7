package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

func TestUninstallFromThePortal(t *testing.T) {
	for name, clean := range map[string]bool{"keep data": false, "clean": true} {
		t.Run(name, func(t *testing.T) {
			e, _, tab := newTestTab(t, 3)
			require.Equal(t, http.StatusOK, tab.status)

			again := e.uninstallForm(clean) // captured while the token is known
			// The portal delivers ONAPPUNINSTALL to the handler the app bound.
			require.NoError(t, e.portal.Uninstall(context.Background(), clean))
			p := e.mustPortal(t)
			assert.False(t, p.Active())
			assert.True(t, p.AccessToken.IsZero() && p.RefreshToken.IsZero(), "tokens wiped")
			if clean {
				assert.Empty(t, p.Domain)
				assert.Empty(t, p.RESTEndpoint)
			}

			// The open tab can no longer act, and nothing reaches the portal.
			mark := len(e.portal.Calls())
			res := e.clickRemove(tab)
			assert.Equal(t, http.StatusUnauthorized, res.status)
			n, _ := batchRequests(e.portal, mark)
			assert.Zero(t, n)

			// A repeated delivery is acknowledged and changes nothing.
			r := e.postForm(e.base+"/events/uninstall", again)
			assert.Equal(t, http.StatusOK, r.status, r.body)
			p2 := e.mustPortal(t)
			assert.Equal(t, p.Version, p2.Version)
		})
	}
}

// uninstallForm builds ONAPPUNINSTALL exactly as Bitrix24 sends it.
func (e *testEnv) uninstallForm(clean bool) url.Values {
	c := "0"
	if clean {
		c = "1"
	}
	return url.Values{
		"event": {"ONAPPUNINSTALL"}, "data[LANGUAGE_ID]": {"en"}, "data[CLEAN]": {c}, "ts": {"1466439714"},
		"auth[domain]": {e.portal.Domain()}, "auth[server_endpoint]": {e.sim.OAuthURL() + "/rest/"},
		"auth[client_endpoint]": {e.portal.RESTEndpoint()}, "auth[member_id]": {e.portal.MemberID()},
		"auth[application_token]": {e.portal.ApplicationToken()},
	}
}

func TestForgedUninstallChangesNothing(t *testing.T) {
	e := newInstalledEnv(t)
	other, err := e.sim.AddPortal(simulator.PortalOptions{})
	require.NoError(t, err)
	before := e.mustPortal(t)
	cases := map[string]func(url.Values){
		"wrong token":    func(f url.Values) { f.Set("auth[application_token]", "guess") },
		"empty token":    func(f url.Values) { f.Set("auth[application_token]", "") },
		"missing token":  func(f url.Values) { f.Del("auth[application_token]") },
		"unknown member": func(f url.Values) { f.Set("auth[member_id]", other.MemberID()) },
		"missing member": func(f url.Values) { f.Del("auth[member_id]") },
		"another event":  func(f url.Values) { f.Set("event", "ONCRMLEADUPDATE") },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			f := e.uninstallForm(true)
			e.remember(f.Get("auth[application_token]"))
			mutate(f)
			r := e.postForm(e.base+"/events/uninstall", f)
			assert.GreaterOrEqual(t, r.status, 400)
			assert.Less(t, r.status, 500)
			assert.True(t, e.mustPortal(t).Active())
			e.assertPortalUnchanged(t, before)
		})
	}
	// The tab still works.
	p := e.openTab(2, e.leadWithContacts(3), "en")
	assert.Equal(t, http.StatusOK, p.status)
}

func TestTabAfterUninstallIsRefused(t *testing.T) {
	e := newInstalledEnv(t)
	f, err := e.portal.OpenLeadTab(2, e.leadWithContacts(3), "en")
	require.NoError(t, err)
	// A genuine uninstall: Bitrix24 revokes the tokens, then delivers
	// ONAPPUNINSTALL to the handler the app bound.
	require.NoError(t, e.portal.Uninstall(context.Background(), false))
	mark := len(e.portal.Calls())
	p := e.postFrame(f)
	assert.Equal(t, http.StatusForbidden, p.status)
	assert.Contains(t, p.doc.Find(".alert").Text(), "not installed")
	n, _ := batchRequests(e.portal, mark)
	assert.Zero(t, n, "refused before anything reaches the portal")
	_, err = e.st.Portal(context.Background(), e.portal.MemberID())
	assert.NotErrorIs(t, err, store.ErrNotFound)
}

// viewerUninstallForm is the ONAPPUNINSTALL a viewer can forge from what
// their own frame carries: the portal's application token (the same in
// every user's frame, recorded) and its member_id.
func viewerUninstallForm(f simulator.Frame, clean bool) url.Values {
	c := "0"
	if clean {
		c = "1"
	}
	return url.Values{
		"event": {"ONAPPUNINSTALL"}, "data[CLEAN]": {c}, "data[LANGUAGE_ID]": {"en"}, "ts": {"1700000000"},
		"auth[domain]": {f.Query.Get("DOMAIN")}, "auth[member_id]": {f.Form.Get("member_id")},
		"auth[application_token]": {f.Form.Get("APPLICATION_TOKEN")},
		"auth[server_endpoint]":   {f.Form.Get("SERVER_ENDPOINT")},
	}
}

// TestViewersForgedUninstallIsIgnored: a viewer (read-only CRM rights)
// takes the application token from their own frame and posts
// ONAPPUNINSTALL with CLEAN=1. Bitrix24, asked with a token the app holds,
// says the app is installed: the event is ignored, the app keeps working
// and the history stays.
func TestViewersForgedUninstallIsIgnored(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	res := e.clickRemove(e.openTab(simulator.SeedSales, lead, "en"))
	require.Equal(t, http.StatusOK, res.status, res.body)
	require.Len(t, e.history(), 1)

	viewer, err := e.portal.OpenLeadTab(simulator.SeedViewer, simulator.SeedLeadOneContact, "en")
	require.NoError(t, err)
	e.rememberFrame(viewer)
	r := e.postForm(e.base+"/events/uninstall", viewerUninstallForm(viewer, true))
	assert.Equal(t, http.StatusOK, r.status, "answered like any event: %s", r.body)
	assert.Contains(t, e.logs.String(), "uninstall event ignored: Bitrix24 says the app is still installed")

	p := e.mustPortal(t)
	assert.True(t, p.Active())
	assert.True(t, p.UninstallReportedAt.IsZero(), "not even reported")
	assert.Len(t, e.history(), 1, "the history is intact")
	tab := e.openTab(simulator.SeedSales, simulator.SeedLeadSixContacts, "en")
	require.Equal(t, http.StatusOK, tab.status)
	res = e.clickRemove(tab)
	assert.Equal(t, http.StatusOK, res.status, "the app keeps working")
}

// TestUnconfirmedUninstallWaitsForTheGracePeriod: when no token the app
// holds can tell (Bitrix24 unreachable for these checks), nothing is
// destroyed at once. A verified frame clears the report; otherwise, after
// the grace period, the portal is uninstalled as reported.
func TestUnconfirmedUninstallWaitsForTheGracePeriod(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	res := e.clickRemove(e.openTab(simulator.SeedSales, lead, "en"))
	require.Equal(t, http.StatusOK, res.status, res.body)
	unreachable := func() {
		e.portal.InjectFault(simulator.Fault{Method: "app.info", Status: 502, RawBody: "<html>Bad gateway</html>", Times: 1000})
		e.sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Status: 502, RawBody: "<html>Bad gateway</html>", Times: 1000})
	}
	reachable := func() {
		e.portal.ClearFaults()
		e.sim.ClearOAuthFaults()
	}
	unreachable()
	r := e.postForm(e.base+"/events/uninstall", e.uninstallForm(true))
	require.Equal(t, http.StatusOK, r.status, r.body)
	p := e.mustPortal(t)
	assert.True(t, p.Active(), "nothing destroyed at once")
	assert.False(t, p.UninstallReportedAt.IsZero())
	assert.True(t, p.UninstallClean)
	assert.Len(t, e.history(), 1)

	// A frame that Bitrix24 verifies clears the report.
	reachable()
	tab := e.openTab(simulator.SeedSales, simulator.SeedLeadSixContacts, "en")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	p = e.mustPortal(t)
	assert.True(t, p.UninstallReportedAt.IsZero(), "a verified frame clears the report")

	// Reported again, and this time nothing verified arrives.
	unreachable()
	r = e.postForm(e.base+"/events/uninstall", e.uninstallForm(true))
	require.Equal(t, http.StatusOK, r.status, r.body)
	res = e.clickRemove(tab)
	assert.Equal(t, http.StatusForbidden, res.status, "no action on stored tokens while reported")
	n, err := e.h.PurgeReportedUninstalls(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n, "within the grace period")
	e.clock.Advance(handlers.DefaultUninstallGrace + time.Minute)
	n, err = e.h.PurgeReportedUninstalls(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	p = e.mustPortal(t)
	assert.False(t, p.Active())
	assert.Empty(t, e.history(), "CLEAN was asked for: the history goes with it")
}

// TestGenuineUninstallIsConfirmedWhateverTheHash: Bitrix24 confirms a
// genuine uninstall (the app's tokens are "Unable to get application by
// token"), so it is acted on at once even when the stored hash cannot be
// checked: a portal installed from an older frame without an application
// token, or a hash made under an APP_SECRET since retired.
func TestGenuineUninstallIsConfirmedWhateverTheHash(t *testing.T) {
	t.Run("older portal", func(t *testing.T) {
		e := newInstalledEnv(t, withPortal(func(o *simulator.PortalOptions) { o.Legacy = true }))
		lead := e.leadWithContacts(3)
		require.Equal(t, http.StatusOK, e.clickRemove(e.openTab(simulator.SeedSales, lead, "en")).status)

		forged := e.uninstallForm(true)
		forged.Set("auth[application_token]", "anything")
		r := e.postForm(e.base+"/events/uninstall", forged)
		assert.Equal(t, http.StatusOK, r.status, "Bitrix24 says installed: ignored")
		p := e.mustPortal(t)
		assert.True(t, p.Active())
		assert.Len(t, e.history(), 1)

		require.NoError(t, e.portal.Uninstall(context.Background(), true))
		p = e.mustPortal(t)
		assert.False(t, p.Active())
		assert.Empty(t, e.history())
	})
	t.Run("retired secret", func(t *testing.T) {
		e := newTestEnv(t)
		e.keys = mustKeyring(t, 7)
		e.restart()
		e.install()
		lead := e.leadWithContacts(3)
		require.Equal(t, http.StatusOK, e.clickRemove(e.openTab(simulator.SeedSales, lead, "en")).status)
		e.keys = mustKeyring(t, 2, 7)
		e.restart()
		_, err := e.st.ResealTokens(context.Background())
		require.NoError(t, err)
		e.keys = mustKeyring(t, 2) // dropped before the portal opened the app again
		e.restart()

		require.NoError(t, e.portal.Uninstall(context.Background(), true))
		p := e.mustPortal(t)
		assert.False(t, p.Active(), "confirmed by Bitrix24, not by the unreadable hash")
		assert.Empty(t, e.history(), "and its data is deleted as asked")
	})
}

// TestOnlyAnAdministratorInstalls: ONAPPINSTALL built from a non-admin's
// own genuine tokens changes nothing (no row, no hash, no tokens) and is
// refused before any binding call.
func TestOnlyAnAdministratorInstalls(t *testing.T) {
	e := newTestEnv(t, withSim(func(o *simulator.Options) { o.App.InstallURL = "" }))
	_, err := e.portal.Install(simulator.SeedAdmin)
	require.NoError(t, err)
	form := e.portal.OnAppInstallEvent(simulator.SeedSales)
	e.remember(form.Get("auth[access_token]"), form.Get("auth[refresh_token]"), form.Get("auth[application_token]"))
	mark := len(e.portal.Calls())
	r := e.postForm(e.base+"/events/install", form)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Contains(t, r.body, "install.not_admin")
	e.assertNotStored(t, e.portal.MemberID(), "no row, no hash, no tokens")
	for _, c := range e.portal.Calls()[mark:] {
		assert.NotContains(t, []string{"placement.bind", "event.bind", "placement.unbind", "event.unbind"}, c.Method)
	}

	// The administrator's own event installs.
	form = e.portal.OnAppInstallEvent(simulator.SeedAdmin)
	e.remember(form.Get("auth[access_token]"), form.Get("auth[refresh_token]"))
	r = e.postForm(e.base+"/events/install", form)
	require.Equal(t, http.StatusOK, r.status, r.body)
	p := e.mustPortal(t)
	assert.EqualValues(t, simulator.SeedAdmin, p.InstalledBy)
}

// TestRebindIsBoundToTheBrowser: the admins' re-bind form carries a
// context bound to the browser that got it, like the tab's: presented with
// another browser's binding cookie it is refused.
func TestRebindIsBoundToTheBrowser(t *testing.T) {
	e := newInstalledEnv(t)
	admin := e.openApp(simulator.SeedAdmin, "en")
	mine := appCookie(t, admin)
	other := appCookie(t, e.openApp(simulator.SeedAdmin, "en"))
	require.NotEqual(t, mine.Value, other.Value)
	e.remember(mine.Value, other.Value)
	actx, _ := admin.doc.Find(`#rebind-form input[name=ctx]`).Attr("value")
	e.remember(actx)
	p := e.postForm(e.base+"/app/rebind", url.Values{"ctx": {actx}}, "Sec-Fetch-Site", "same-origin", "Origin", e.base,
		"Cookie", other.Name+"="+other.Value)
	assert.Equal(t, http.StatusForbidden, p.status)
	p = e.postForm(e.base+"/app/rebind", url.Values{"ctx": {actx}}, "Sec-Fetch-Site", "same-origin", "Origin", e.base,
		"Cookie", mine.Name+"="+mine.Value)
	assert.Equal(t, http.StatusOK, p.status, p.body)
}

// TestRefreshForAnotherUserEndsTheSession: a session whose refresh token
// turns out to belong to another user (a REFRESH_ID posted with someone
// else's AUTH_ID) is ended at the first refresh, and nothing is done with
// the other user's rights.
func TestRefreshForAnotherUserEndsTheSession(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	f, err := e.portal.OpenLeadTab(simulator.SeedViewer, lead, "en")
	require.NoError(t, err)
	admin := e.portal.IssueTokens(simulator.SeedAdmin)
	e.remember(admin.RefreshToken, admin.AccessToken)
	f.Form.Set("REFRESH_ID", admin.RefreshToken) // the viewer's AUTH_ID, an admin's REFRESH_ID
	tab := e.postFrame(f)
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	e.expireAccessTokens()
	res := e.clickRemove(tab)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	assert.Len(t, e.portal.LeadContacts(lead), 3, "nothing done with the admin's rights")
	assert.Zero(t, e.sessionRows(), "the session is ended")
}

// TestUninstallCheckRenewsTheInstallersToken: with no user session to ask
// with and the installer's access token expired, the check refreshes the
// installer's pair (under the portal's lock), stores it, and asks with it.
func TestUninstallCheckRenewsTheInstallersToken(t *testing.T) {
	e := newInstalledEnv(t)
	before := e.mustPortal(t)
	e.expireAccessTokens()
	mark := len(e.sim.Refreshes())
	r := e.postForm(e.base+"/events/uninstall", e.uninstallForm(true))
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, e.logs.String(), "uninstall event ignored")
	refs := e.sim.Refreshes()[mark:]
	require.Len(t, refs, 1, "one refresh of the installer's pair")
	assert.Empty(t, refs[0].Error)
	after := e.mustPortal(t)
	assert.True(t, after.Active())
	assert.Greater(t, after.Version, before.Version, "the renewed pair is stored")
	assert.False(t, after.RefreshToken.Equal(before.RefreshToken))
}
