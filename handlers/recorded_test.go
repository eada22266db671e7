package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/internal/recorded"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
)

// The tests in this file hold the app to what real Bitrix24 servers send
// (testdata/recorded/, the platform doc's "Recorded behaviour"): token
// answers whose scope is the literal "app", frames and events as recorded,
// the OAuth errors with their statuses, and the refresh that may or may not
// end the old access token.

// installVia installs the app on the test portal the way one of Bitrix24's
// install paths does, and checks what got stored.
func installVia(t *testing.T, e *testEnv, path string) {
	t.Helper()
	switch path {
	case "installer":
		e.install()
	case "ONAPPINSTALL":
		// An app without an installer page: Bitrix24 installs it at once
		// and POSTs ONAPPINSTALL to the console's installation handler.
		_, err := e.portal.Install(1)
		require.NoError(t, err)
		form := e.portal.OnAppInstallEvent(1)
		e.remember(form.Get("auth[access_token]"), form.Get("auth[refresh_token]"), form.Get("auth[application_token]"))
		resp, err := e.portal.Deliver(context.Background(), e.base+e.m.Events["ONAPPINSTALL"], form)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	default:
		t.Fatalf("unknown install path %q", path)
	}
	refs := e.sim.Refreshes()
	require.NotEmpty(t, refs)
	p := e.mustPortal(t)
	assert.Equal(t, strings.Join(e.m.Scope, ","), p.Scope, "the scopes Bitrix24 sent with the request, not the token answer's \"app\"")
	assert.Equal(t, "b24apps.leadcontacts", p.AppCode)
	assert.NotZero(t, p.AppID)
	pls := e.portal.Placements()
	require.Len(t, pls, 2)
	assert.Equal(t, "CRM_LEAD_DETAIL_TAB", pls[0].Placement)
	assert.Equal(t, "CRM_LEAD_LIST_MENU", pls[1].Placement)
}

// TestWholeFlowWithRecordedTokenAnswers is issue 8's "done when": through
// the installer and through ONAPPINSTALL, with token answers whose scope is
// "app", install, tab, removal (after the user's token expired, so with a
// refresh), undo and uninstall all work, whether a refresh ends the old
// access token (the legacy docs' reading) or not: the recordings do not
// settle it.
func TestWholeFlowWithRecordedTokenAnswers(t *testing.T) {
	for _, path := range []string{"installer", "ONAPPINSTALL"} {
		for _, keep := range []bool{false, true} {
			name := path + "/refresh ends the old access token"
			if keep {
				name = path + "/refresh keeps the old access token"
			}
			t.Run(name, func(t *testing.T) {
				e := newTestEnv(t, withSim(func(o *simulator.Options) {
					o.RefreshKeepsAccess = keep
					if path == "ONAPPINSTALL" {
						o.App.InstallURL = ""
					}
				}))
				installVia(t, e, path)
				for _, r := range e.sim.Refreshes() {
					assert.Empty(t, r.Error)
				}

				lead := e.leadWithContacts(3)
				before := e.portal.LeadContacts(lead)
				tab := e.openTab(2, lead, "de")
				require.Equal(t, http.StatusOK, tab.status, tab.body)
				assert.Equal(t, 3, tab.doc.Find("#contacts li").Length())

				e.expireAccessTokens()
				mark := len(e.sim.Refreshes())
				res := e.clickRemove(tab)
				require.Equal(t, http.StatusOK, res.status, res.body)
				assert.Empty(t, e.portal.LeadContacts(lead))
				refs := e.sim.Refreshes()[mark:]
				require.Len(t, refs, 1, "one refresh for the expired token")
				assert.Equal(t, 2, refs[0].UserID)
				assert.Empty(t, refs[0].Error)

				undone := e.submit(res, "#undo-form")
				require.Equal(t, http.StatusOK, undone.status, undone.body)
				assert.ElementsMatch(t, before, e.portal.LeadContacts(lead), "undo restores the links")
				assert.Len(t, e.sim.Refreshes(), mark+1, "undo uses the refreshed pair")
				require.Len(t, e.history(), 2)

				require.NoError(t, e.portal.Uninstall(context.Background(), true))
				p := e.mustPortal(t)
				assert.False(t, p.Active())
				assert.Empty(t, e.history(), "a clean uninstall wipes the history")
				again := e.clickRemove(tab)
				assert.Equal(t, http.StatusUnauthorized, again.status)
			})
		}
	}
}

// TestRecordedFramesAreServed posts frames with exactly the recorded
// fields (names and order, values from the simulated portal): the 2025+
// installer and lead tab, and the older shape without SERVER_ENDPOINT,
// APPLICATION_TOKEN and APPLICATION_SCOPE.
func TestRecordedFramesAreServed(t *testing.T) {
	asRecorded := func(t *testing.T, name string, live simulator.Frame) simulator.Frame {
		t.Helper()
		f, err := recorded.Load(name)
		require.NoError(t, err)
		out := simulator.Frame{Query: url.Values{}, Form: url.Values{}, UserID: live.UserID}
		for _, k := range f.Query.Keys() {
			require.Contains(t, live.Query, k, "%s: the simulator sends %s", name, k)
			out.Query.Set(k, live.Query.Get(k))
		}
		for _, k := range f.Form.Keys() {
			require.Contains(t, live.Form, k, "%s: the simulator sends %s", name, k)
			out.Form.Set(k, live.Form.Get(k))
		}
		u, err := url.Parse(live.URL)
		require.NoError(t, err)
		u.RawQuery = out.Query.Encode()
		out.URL = u.String()
		return out
	}

	cases := []struct {
		name           string
		opts           []envOption
		installer, tab string
		legacy         bool
	}{
		{name: "current", installer: "frame_installer", tab: "frame_lead_tab"},
		{
			name:      "older portal",
			opts:      []envOption{withPortal(func(o *simulator.PortalOptions) { o.Legacy = true })},
			installer: "frame_legacy_installer_phpsdk", tab: "frame_legacy_onprem", legacy: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.opts...)
			f, err := e.portal.BeginInstall(1)
			require.NoError(t, err)
			if tc.legacy {
				// The recorded older installer frame (b24phpsdk, 2024)
				// carries PLACEMENT_OPTIONS even on DEFAULT.
				f.Form.Set("PLACEMENT_OPTIONS", `{"any":"28\/"}`)
			}
			p := e.postFrame(asRecorded(t, tc.installer, f))
			require.Equal(t, http.StatusOK, p.status, p.body)
			e.portal.FinishInstall()
			stored := e.mustPortal(t)
			assert.Equal(t, tc.legacy, stored.AppTokenHash == "", "an application token is stored if one was sent")
			assert.Equal(t, "b24apps.leadcontacts", stored.AppCode)

			lead := e.leadWithContacts(3)
			f, err = e.portal.OpenLeadTab(2, lead, "en")
			require.NoError(t, err)
			tab := e.postFrame(asRecorded(t, tc.tab, f))
			require.Equal(t, http.StatusOK, tab.status, tab.body)
			assert.Equal(t, 3, tab.doc.Find("#contacts li").Length())
			res := e.clickRemove(tab)
			require.Equal(t, http.StatusOK, res.status, res.body)
			assert.Empty(t, e.portal.LeadContacts(lead))
		})
	}
}

// TestOlderPortalFramesAreProvenByTheirBatch: a frame without an
// application token is served only for a portal installed that way, and
// only when the batch proves the token is this app's on that portal.
func TestOlderPortalFramesAreProvenByTheirBatch(t *testing.T) {
	t.Run("a portal that had an application token never loses it", func(t *testing.T) {
		e := newInstalledEnv(t)
		lead := e.leadWithContacts(3)
		f, err := e.portal.OpenLeadTab(2, lead, "en")
		require.NoError(t, err)
		f.Form.Del("APPLICATION_TOKEN")
		f.Form.Del("SERVER_ENDPOINT")
		p := e.postFrame(f)
		assert.Equal(t, http.StatusForbidden, p.status)

		before := e.mustPortal(t)
		inst, err := e.portal.BeginInstall(1)
		require.NoError(t, err)
		inst.Form.Del("APPLICATION_TOKEN")
		inst.Form.Del("SERVER_ENDPOINT")
		p = e.postFrame(inst)
		assert.Equal(t, http.StatusForbidden, p.status, "no downgrade through the installer either")
		e.assertPortalUnchanged(t, before)
	})

	t.Run("a token of another app is refused", func(t *testing.T) {
		e := newInstalledEnv(t, withPortal(func(o *simulator.PortalOptions) { o.Legacy = true }))
		lead := e.leadWithContacts(3)
		// The stored app no longer matches what the portal says of the
		// token's app: as if the token had been issued to another app.
		p := e.mustPortal(t)
		p.AppCode = "other.vendor.app"
		require.NoError(t, e.st.SavePortal(context.Background(), p))
		tab := e.openTab(2, lead, "en")
		assert.Equal(t, http.StatusForbidden, tab.status)
		assert.Zero(t, e.sessionRows(), "no session for an unproven frame")
	})
}

// TestInstallJudgesScopesFromWhatBitrix24Sent: the token answer says
// "app", so the installer judges the granted scopes from the frame's
// APPLICATION_SCOPE (or the event's auth[scope]) and names what is
// missing; where Bitrix24 sent no list, the insufficient_scope answer does.
func TestInstallJudgesScopesFromWhatBitrix24Sent(t *testing.T) {
	crmOnly := withSim(func(o *simulator.Options) { o.App.Scope = []string{"crm"} })
	for _, tt := range []struct {
		name string
		opts []envOption
	}{
		{"APPLICATION_SCOPE lacks placement", []envOption{crmOnly}},
		{"no scope list, placement.get refused", []envOption{crmOnly, withPortal(func(o *simulator.PortalOptions) { o.Legacy = true })}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, tt.opts...)
			f, err := e.portal.BeginInstall(1)
			require.NoError(t, err)
			p := e.postFrame(f)
			assert.Equal(t, http.StatusForbidden, p.status)
			msg := text(p, ".alert-danger")
			assert.Contains(t, msg, "placement")
			assert.Contains(t, msg, "vendor console")
			assert.False(t, p.doc.Find("body").HasClass("install-finish"), "no installFinish for a failed install")
			assert.Contains(t, p.header.Get("Content-Security-Policy"), "frame-ancestors "+e.portal.URL(), "verified: the portal shows the page")
			e.assertNotStored(t, e.portal.MemberID(), "nothing stored")
			assert.Empty(t, e.portal.Placements())
		})
	}

	t.Run("ONAPPINSTALL", func(t *testing.T) {
		e := newTestEnv(t, crmOnly, withSim(func(o *simulator.Options) { o.App.Scope = []string{"crm"}; o.App.InstallURL = "" }))
		_, err := e.portal.Install(1)
		require.NoError(t, err)
		form := e.portal.OnAppInstallEvent(1)
		e.remember(form.Get("auth[access_token]"), form.Get("auth[refresh_token]"), form.Get("auth[application_token]"))
		res := e.postForm(e.base+"/events/install", form)
		assert.Equal(t, http.StatusForbidden, res.status)
		assert.Contains(t, res.body, "install.scope_missing")
		e.assertNotStored(t, e.portal.MemberID())
	})
}

// withOAuthCredentials configures the app with other OAuth credentials
// than the simulator's app has (the operator's mistake).
func withOAuthCredentials(id, secretValue string) envOption {
	return func(e *testEnv) {
		e.wrapOAuth = func(handlers.OAuth) handlers.OAuth {
			return oauth.New(id, secret.New(secretValue), []string{e.sim.OAuthURL()}, bitrix24.NewHTTPClient(true))
		}
	}
}

// TestRejectedAppCredentialsAreNamed: wrong_client (HTTP 200) and
// invalid_client mean the operator's B24_CLIENT_ID or B24_CLIENT_SECRET is
// wrong. The log says so at error level, the page names the cause, and a
// user's session is not thrown away for it.
func TestRejectedAppCredentialsAreNamed(t *testing.T) {
	for _, tt := range []struct{ name, id, secret, code string }{
		{"unknown client_id", "app.someone.else", testClientSecret, "wrong_client"},
		{"wrong client_secret", testClientID, "not-the-secret", "invalid_client"},
	} {
		t.Run(tt.name+"/install", func(t *testing.T) {
			e := newTestEnv(t, withOAuthCredentials(tt.id, tt.secret))
			e.remember(tt.secret)
			f, err := e.portal.BeginInstall(1)
			require.NoError(t, err)
			p := e.postFrame(f)
			assert.Equal(t, http.StatusServiceUnavailable, p.status)
			assert.Contains(t, p.body, "rejected the app")
			assert.Contains(t, p.body, tt.code)
			assert.Contains(t, e.logs.String(), `"level":"ERROR","msg":"the OAuth server rejects this app's credentials`)
			e.assertNotStored(t, e.portal.MemberID())
		})
		t.Run(tt.name+"/click", func(t *testing.T) {
			e, lead, tab := newTestTab(t, 3)
			require.Equal(t, http.StatusOK, tab.status)
			withOAuthCredentials(tt.id, tt.secret)(e)
			e.remember(tt.secret)
			e.restart()
			e.expireAccessTokens()
			res := e.clickRemove(tab)
			assert.Equal(t, http.StatusServiceUnavailable, res.status)
			assert.Contains(t, res.body, "rejected the app")
			assert.Contains(t, e.logs.String(), `"level":"ERROR","msg":"the OAuth server rejects this app's credentials`)
			assert.Len(t, e.portal.LeadContacts(lead), 3)
			assert.Equal(t, 1, e.sessionRows(), "the user's session is kept")

			// Once the operator fixes the credentials, the same tab works.
			e.wrapOAuth = nil
			e.restart()
			res = e.clickRemove(tab)
			require.Equal(t, http.StatusOK, res.status, res.body)
			assert.Empty(t, e.portal.LeadContacts(lead))
		})
	}
}

// TestDeadGrantsAskForWhatRenewsThem: invalid_grant on the installer's
// token means "install again", on a user's "open the tab again".
func TestDeadGrantsAskForWhatRenewsThem(t *testing.T) {
	e := newTestEnv(t)
	f, err := e.portal.BeginInstall(1)
	require.NoError(t, err)
	f.Form.Set("REFRESH_ID", strings.Repeat("ab", 32))
	p := e.postFrame(f)
	assert.Equal(t, http.StatusForbidden, p.status)
	assert.Contains(t, p.body, "Start the installation again")

	e.install()
	lead := e.leadWithContacts(3)
	tab := e.openTab(2, lead, "en")
	require.Equal(t, http.StatusOK, tab.status)
	e.sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Status: 400, Code: "invalid_grant"})
	e.expireAccessTokens()
	res := e.clickRemove(tab)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	assert.Contains(t, res.body, "open it again from the lead card")
}

// TestRecordedEventsAreParsed feeds the recorded events to the parser.
func TestRecordedEventsAreParsed(t *testing.T) {
	for _, name := range []string{"event_onappinstall", "event_onappuninstall_clean1", "event_onappuninstall_clean0"} {
		f, err := recorded.Load(name)
		require.NoError(t, err)
		ev, err := handlers.ParseEvent(f.Form.Values())
		require.NoError(t, err, name)
		want, _ := f.Form.Get("event")
		assert.Equal(t, want, ev.Name)
		member, _ := f.Form.Get("auth[member_id]")
		assert.Equal(t, member, ev.Auth["member_id"])
		token, _ := f.Form.Get("auth[application_token]")
		assert.Equal(t, token, ev.Auth["application_token"])
	}
	f, err := recorded.Load("event_onappinstall")
	require.NoError(t, err)
	ev, err := handlers.ParseEvent(f.Form.Values())
	require.NoError(t, err)
	assert.Equal(t, "crm,telephony,call,user_basic,placement,im,imopenlines", ev.Auth["scope"])
	assert.NotEmpty(t, ev.Auth["refresh_token"])
}

// TestRecordedFramesAreParsed feeds the recorded frames to the parsers.
func TestRecordedFramesAreParsed(t *testing.T) {
	for _, tt := range []struct {
		name   string
		leadID int64
		scope  string
	}{
		{"frame_lead_tab", 123, "crm,placement"},
		{"frame_legacy_onprem", 6591, ""},
		{"frame_installer", 0, "crm,placement"},
		{"frame_legacy_installer_phpsdk", 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := recorded.Load(tt.name)
			require.NoError(t, err)
			fr, err := handlers.ParseFrame(f.Query.Values(), f.Form.Values())
			require.NoError(t, err)
			domain, _ := f.Query.Get("DOMAIN")
			assert.Equal(t, domain, fr.Domain)
			assert.Equal(t, tt.scope, fr.Scope)
			if tt.leadID != 0 {
				id, err := handlers.ParsePlacementOptions(fr.PlacementOptions)
				require.NoError(t, err)
				assert.Equal(t, tt.leadID, id)
				var opts map[string]any
				require.NoError(t, json.Unmarshal([]byte(fr.PlacementOptions), &opts))
			}
		})
	}
}

// TestAppPageNamesAMissingScope: the app page's frame carries the scopes
// granted now (APPLICATION_SCOPE); one the app needs and lacks is named
// to the admin, with where to add it.
func TestAppPageNamesAMissingScope(t *testing.T) {
	e := newInstalledEnv(t)
	f, err := e.portal.OpenApp(simulator.SeedAdmin, "en")
	require.NoError(t, err)
	f.Form.Set("APPLICATION_SCOPE", "crm,user")
	p := e.postFrame(f)
	require.Equal(t, http.StatusOK, p.status, p.body)
	banner := text(p, ".alert-danger")
	assert.Contains(t, banner, "placement")
	assert.Contains(t, banner, "vendor console")

	p = e.openApp(simulator.SeedAdmin, "en")
	assert.Zero(t, p.doc.Find(".alert-danger").Length(), "no banner when every scope is granted: %s", text(p, ".alert-danger"))
}

// TestNonAdminInstallChangesNothing: a user's own genuine tokens, posted to
// the installer as if it were an install, stop at placement.get (admins
// only, recorded: 403 ACCESS_DENIED), before anything is stored.
func TestNonAdminInstallChangesNothing(t *testing.T) {
	e := newInstalledEnv(t)
	before := e.mustPortal(t)
	lead := e.leadWithContacts(3)
	f, err := e.portal.OpenLeadTab(2, lead, "en")
	require.NoError(t, err)
	f.Form.Set("PLACEMENT", "DEFAULT")
	f.Form.Del("PLACEMENT_OPTIONS")
	f.URL = e.base + e.m.Install + "?" + f.Query.Encode()
	p := e.postFrame(f)
	assert.Equal(t, http.StatusForbidden, p.status)
	assert.Contains(t, text(p, ".alert-danger"), "Only a Bitrix24 administrator")
	e.assertPortalUnchanged(t, before)
	assert.Equal(t, before.InstalledBy, e.mustPortal(t).InstalledBy)
}

// TestRecordedAlreadyBoundIsNotAnInstallError: a bind that races another
// (the binding appeared between placement.get and placement.bind) gets the
// recorded ERROR_CORE "Handler already binded", which the installer takes
// as success.
func TestRecordedAlreadyBoundIsNotAnInstallError(t *testing.T) {
	f, err := recorded.Load("rest_handler_already_binded")
	require.NoError(t, err)
	var body struct {
		Code string `json:"error"`
		Desc string `json:"error_description"`
	}
	require.NoError(t, json.Unmarshal(f.Body, &body))
	e := newTestEnv(t)
	e.portal.InjectFault(simulator.Fault{Method: "placement.bind", Status: f.Status, Code: body.Code, Description: body.Desc})
	p := e.install()
	assert.True(t, p.doc.Find("body").HasClass("install-finish"), "the install completes: %s", p.body)
}
