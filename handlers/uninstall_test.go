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

func TestUninstallFromThePortal(t *testing.T) {
	for _, clean := range []bool{false, true} {
		name := "keep data"
		if clean {
			name = "clean"
		}
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
			after := e.mustPortal(t)
			assert.True(t, after.Active())
			assert.Equal(t, before.Version, after.Version)
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
