package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// runInstallAndRefresh drives what writes tokens: an install, a tab, and a
// removal on an expired token (so a refreshed pair is stored).
func runInstallAndRefresh(t *testing.T, e *testEnv) {
	t.Helper()
	e.install()
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	e.remember(contextOf(tab), appCookie(t, tab).Value)
	e.expireAccessTokens()
	require.Equal(t, http.StatusOK, e.clickRemove(tab).status)
	require.Empty(t, e.portal.LeadContacts(lead))
}

// F1 (SQLite): after install and refresh, the raw database file holds no
// token the app ever saw — received, issued or derived — in clear.
func TestNoSecretInTheSQLiteFile(t *testing.T) {
	e, wire := newWiredEnv(t)
	runInstallAndRefresh(t, e)
	issued := wire.issuedTokens()
	require.GreaterOrEqual(t, len(issued), 4, "install and refresh each issued a pair")
	db := e.dbFile()
	require.Contains(t, string(db), e.portal.MemberID(), "the file shows the rows")
	require.Contains(t, string(db), "v1:"+e.keys.KeyID()+":", "the file shows the ciphertexts")
	for _, s := range append(issued, e.secretsSeen()...) {
		if len(s) >= 8 {
			assert.NotContains(t, string(db), s, "a secret (%.4s…) in clear in the database file", s)
		}
	}
}

// F1 (PostgreSQL): the same run on the PostgreSQL store, checked with a
// real pg_dump of the app's schema: what a leaked backup would show.
func TestNoSecretInAPostgresDump(t *testing.T) {
	base := storetest.PostgresURL(t)
	pgDump, err := exec.LookPath("pg_dump")
	require.NoError(t, err, "pg_dump is needed to check what a backup holds (Debian: postgresql-client)")
	dsn := storetest.FreshSchema(t, "handlers_")
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	schema := u.Query().Get("search_path")

	e, wire := newWiredEnv(t, withPostgresAt(dsn))
	runInstallAndRefresh(t, e)

	out, err := exec.Command(pgDump, "--data-only", "--schema="+schema, base).CombinedOutput()
	require.NoError(t, err, "%s", out)
	dump := string(out)
	require.Contains(t, dump, e.portal.MemberID(), "the dump shows the rows")
	require.Contains(t, dump, "v1:"+e.keys.KeyID()+":", "the dump shows the ciphertexts")
	issued := wire.issuedTokens()
	require.GreaterOrEqual(t, len(issued), 4)
	for _, s := range append(issued, e.secretsSeen()...) {
		if len(s) >= 8 {
			assert.NotContains(t, dump, s, "a secret (%.4s…) in clear in pg_dump", s)
		}
	}
}

// F2: a ciphertext moved into another session's row does not open (its
// associated data names the row): the click fails with a clear server
// error, no token goes anywhere, and the log names the column, not a value.
func TestMovedCiphertextFailsWithoutACall(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead := e.leadWithContacts(3)
	a := e.openTab(simulator.SeedSales, lead, "en")
	b := e.openTab(simulator.SeedViewer, lead, "en")
	idA, idB := e.readContext(contextOf(a))["s"].(string), e.readContext(contextOf(b))["s"].(string)
	e.remember(contextOf(a), contextOf(b), idA, idB)
	for _, column := range []string{"access_token", "refresh_token"} {
		_, err := e.rawDB().Exec(`UPDATE sessions SET `+column+` = (SELECT `+column+` FROM sessions WHERE id_lookup = ?) WHERE id_lookup = ?`,
			e.keys.Lookup(idB), e.keys.Lookup(idA))
		require.NoError(t, err)
		mark, logMark := len(wire.requests()), len(e.logs.String())
		p := e.clickRemove(a)
		assert.Equal(t, http.StatusInternalServerError, p.status, column)
		assert.Empty(t, wire.requests()[mark:], "no call with a token from another row")
		logged := e.logs.String()[logMark:]
		assert.Contains(t, logged, column)
		assert.Contains(t, logged, secret.ErrCorrupt.Error())
		// Put the column back for the next round.
		_, err = e.rawDB().Exec(`UPDATE sessions SET `+column+` = '' WHERE id_lookup = ?`, e.keys.Lookup(idA))
		require.NoError(t, err)
	}
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

// F3: a row sealed under a key the keyring no longer holds fails with a
// clear error for that row (logged with the portal and the cause), not
// with a wrong token or a call; other portals are unaffected. (Missing or
// short APP_SECRET: TestRefusesToStartWithoutAGoodSecret in the main
// package.)
//
// F4: APP_SECRET rotation end to end through the real engine. With the
// old secret as APP_SECRET_PREVIOUS every row stays readable and every
// flow works; new writes (sessions, refreshed pairs, a reinstall) carry the
// new key id; once a portal's row has been rewritten, the old key can be
// retired for it. A portal whose row was never rewritten under the new key
// is the F3 case above: the app has no background re-encryption job yet,
// so retiring the old key requires every portal to have reinstalled (see
// the issue 3 report).
func TestKeyRotationEndToEnd(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	oldID := e.keys.KeyID()
	// Portal B, installed under the old key and never touched again.
	other := e.addInstalledPortal(t)

	// Step 1: new APP_SECRET, old one as APP_SECRET_PREVIOUS.
	e.keys = mustKeyring(t, 2, 7)
	newID := e.keys.KeyID()
	require.NotEqual(t, oldID, newID)
	e.restart()
	lead := e.leadWithContacts(6)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, tab.status, "old portal row and hash still verify: %s", tab.body)
	assert.Equal(t, newID, kidOf(t, e, `SELECT access_token FROM sessions ORDER BY created_at DESC LIMIT 1`), "new session under the new key")
	e.expireAccessTokens()
	require.Equal(t, http.StatusOK, e.clickRemove(tab).status, "refresh during the overlap")
	assert.Equal(t, newID, kidOf(t, e, `SELECT refresh_token FROM sessions ORDER BY created_at DESC LIMIT 1`), "refreshed pair under the new key")
	assert.Equal(t, oldID, kidOf(t, e, `SELECT access_token FROM portals WHERE member_id = '`+e.portal.MemberID()+`'`))

	// Step 2: rewrite portal A's row (a reinstall stores fresh, verified
	// tokens and the application token's hash under the new key).
	e.install()
	assert.Equal(t, newID, kidOf(t, e, `SELECT access_token FROM portals WHERE member_id = '`+e.portal.MemberID()+`'`))
	assert.Equal(t, newID, kidOf(t, e, `SELECT refresh_token FROM portals WHERE member_id = '`+e.portal.MemberID()+`'`))
	assert.Equal(t, newID, kidOf(t, e, `SELECT app_token_hash FROM portals WHERE member_id = '`+e.portal.MemberID()+`'`))

	// Step 3: retire the old key.
	e.keys = mustKeyring(t, 2)
	e.restart()
	lead = e.leadWithContacts(1)
	tab = e.openTab(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	require.Equal(t, http.StatusOK, e.clickRemove(tab).status)
	assert.Empty(t, e.portal.LeadContacts(lead))

	// F3: portal B's row still names the retired key.
	mark, logMark := len(wire.requests()), len(e.logs.String())
	f, err := other.OpenLeadTab(simulator.SeedSales, simulator.SeedLeadThreeContacts, "en")
	require.NoError(t, err)
	p := e.postFrame(f)
	assert.Equal(t, http.StatusInternalServerError, p.status)
	assert.Empty(t, wire.requests()[mark:], "no call")
	assert.Empty(t, contextOf(p))
	logged := e.logs.String()[logMark:]
	assert.Contains(t, logged, secret.ErrUnknownKey.Error())
	assert.Contains(t, logged, other.MemberID(), "the error names the row")
}

// kidOf returns the key id of one sealed or hashed column value.
func kidOf(t *testing.T, e *testEnv, query string) string {
	t.Helper()
	var v string
	require.NoError(t, e.rawDB().QueryRow(query).Scan(&v))
	parts := strings.SplitN(v, ":", 3)
	require.Len(t, parts, 3, "not a sealed value: %.8s…", v)
	return parts[1]
}

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
