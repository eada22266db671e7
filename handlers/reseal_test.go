package handlers_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// F4 end to end without a reinstall: after APP_SECRET rotates, the reseal
// pass moves the stored tokens and the next tab open renews the
// application-token hash; then the previous secret can go and the portal
// keeps working.
func TestRotationCompletesWithoutAReinstall(t *testing.T) {
	e := newTestEnv(t)
	e.keys = mustKeyring(t, 7)
	e.restart()
	e.install()
	lead := e.leadWithContacts(3)

	e.keys = mustKeyring(t, 2, 7) // APP_SECRET=new, APP_SECRET_PREVIOUS=old
	e.restart()
	n, err := e.st.ResealTokens(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the installer's token pair")
	tab := e.openTab(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	p := e.mustPortal(t)
	assert.True(t, e.keys.HashIsCurrent(p.AppTokenHash), "hash renewed while the token was at hand")

	e.keys = mustKeyring(t, 2) // the previous secret is dropped
	e.restart()
	tab = e.openTab(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	res := e.clickRemove(tab)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, e.portal.LeadContacts(lead))
}
