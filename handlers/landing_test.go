package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 13, point 5: every address of the app opened in a browser shows
// what the app is and how to install it, in the browser's language.

func TestGETOnEveryAddressShowsTheLanding(t *testing.T) {
	e := newInstalledEnv(t)
	mark := len(e.portal.Calls())
	for _, path := range []string{"/", "/install", "/app", "/app/rebind", "/placements/lead-tab",
		"/placements/lead-tab/remove", "/placements/lead-tab/confirm", "/placements/lead-tab/view",
		"/placements/lead-tab/undo", "/events/install", "/events/uninstall"} {
		p := e.send(http.MethodGet, path, nil, "Accept-Language", "en-US,en;q=0.9")
		require.Equal(t, http.StatusOK, p.status, path)
		assert.Equal(t, "Contacts cleanup for Bitrix24", text(p, "h1.title"), path)
		assert.Equal(t, []string{
			"In your Bitrix24, open Applications → Market. Only a Bitrix24 administrator can install apps.",
			"Search for “Contacts cleanup”, open the app and click Install.",
			"Open any lead in the CRM and choose the “Contacts cleanup” tab.",
		}, texts(p, "#install-steps li"), path)
		assert.Contains(t, text(p, "#what"), "The contacts themselves stay in the CRM.", path)
		assert.Zero(t, p.doc.Find("form, input[name=ctx]").Length(), "%s: nothing to act on", path)
		// Outside Bitrix24 there is no BX24 library to load.
		assert.Equal(t, 1, p.doc.Find("script").Length(), "%s: only the app's own script", path)
		assertPageHeaders(t, path, p.header, "")

		head := e.send(http.MethodHead, path, nil)
		assert.Equal(t, http.StatusOK, head.status, "HEAD %s", path)
		assert.Empty(t, head.body, "HEAD %s", path)
	}
	assert.Len(t, e.portal.Calls(), mark, "a GET never calls the portal")
}

func TestLandingSpeaksTheBrowsersLanguage(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		accept, query, lang, dir, title, step string
	}{
		{"ru-RU,ru;q=0.9,en;q=0.8", "", "ru", "ltr", "Очистка контактов для Bitrix24", "Откройте любой лид в CRM и выберите вкладку «Очистка контактов»."},
		{"ar-EG,ar;q=0.9", "", "ar", "rtl", "تنظيف جهات الاتصال لـ Bitrix24", "افتح أي عميل محتمل في CRM واختر علامة التبويب «تنظيف جهات الاتصال»."},
		{"uk", "", "uk", "ltr", "Очищення контактів для Bitrix24", "Відкрийте будь-який лід у CRM і виберіть вкладку «Очищення контактів»."},
		{"nb-NO", "", "en", "ltr", "Contacts cleanup for Bitrix24", "Open any lead in the CRM and choose the “Contacts cleanup” tab."},
		// Bitrix24's LANG wins over the browser.
		{"ru", "?LANG=de", "de", "ltr", "Kontakte bereinigen für Bitrix24", "Öffnen Sie einen beliebigen Lead im CRM und wählen Sie den Tab „Kontakte bereinigen“."},
	} {
		p := e.send(http.MethodGet, "/app"+tc.query, nil, "Accept-Language", tc.accept)
		require.Equal(t, http.StatusOK, p.status, tc.accept)
		html := p.doc.Find("html")
		assert.Equal(t, tc.lang, html.AttrOr("lang", ""), tc.accept)
		assert.Equal(t, tc.dir, html.AttrOr("dir", ""), tc.accept)
		assert.Equal(t, tc.title, text(p, "h1.title"), tc.accept)
		steps := texts(p, "#install-steps li")
		require.Len(t, steps, 3, tc.accept)
		assert.Equal(t, tc.step, steps[2], tc.accept)
		if tc.query == "" {
			assert.Contains(t, p.header.Values("Vary"), "Accept-Language", tc.accept)
		}
	}
}

func TestErrorPagesSpeakTheBrowsersLanguage(t *testing.T) {
	e := newTestEnv(t)
	notFound := e.send(http.MethodGet, "/no/such/page", nil, "Accept-Language", "ru")
	assert.Equal(t, http.StatusNotFound, notFound.status)
	assert.Equal(t, "ru", notFound.doc.Find("html").AttrOr("lang", ""))
	assert.Contains(t, text(notFound, ".alert"), "По этому адресу ничего нет.")

	notAllowed := e.send(http.MethodPut, "/app", nil, "Accept-Language", "ar")
	assert.Equal(t, http.StatusMethodNotAllowed, notAllowed.status)
	assert.Equal(t, "rtl", notAllowed.doc.Find("html").AttrOr("dir", ""))
	assert.Contains(t, text(notAllowed, ".alert"), "لا يقبل هذا العنوان هذا النوع من الطلبات.")

	// A refused frame carries Bitrix24's LANG: that wins.
	refused := e.send(http.MethodPost, "/placements/lead-tab?LANG=de", strings.NewReader("x=1"),
		"Content-Type", "application/x-www-form-urlencoded", "Accept-Language", "ru", "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, "de", refused.doc.Find("html").AttrOr("lang", ""), refused.body)
}

func TestFavicon(t *testing.T) {
	e := newTestEnv(t)
	p := e.send(http.MethodGet, "/", nil)
	href := p.doc.Find(`link[rel=icon]`).AttrOr("href", "")
	require.True(t, strings.HasPrefix(href, "/static/favicon."), "the layout links the hashed icon: %q", href)
	assert.Equal(t, "image/svg+xml", p.doc.Find(`link[rel=icon]`).AttrOr("type", ""))

	hashed := e.send(http.MethodGet, href, nil)
	require.Equal(t, http.StatusOK, hashed.status)
	assert.Equal(t, "image/svg+xml", hashed.header.Get("Content-Type"))
	assert.Contains(t, hashed.header.Get("Cache-Control"), "immutable")
	assert.True(t, strings.HasPrefix(hashed.body, "<svg "), hashed.body)

	ico := e.send(http.MethodGet, "/favicon.ico", nil)
	require.Equal(t, http.StatusOK, ico.status, "browsers ask for /favicon.ico on their own: no 404 in the console")
	assert.Equal(t, "image/svg+xml", ico.header.Get("Content-Type"))
	assert.Equal(t, hashed.body, ico.body)
	assert.Equal(t, "public, max-age=86400", ico.header.Get("Cache-Control"))
	assert.Equal(t, http.StatusOK, e.send(http.MethodHead, "/favicon.ico", nil).status)
}

// texts is the normalized text of every element matching sel.
func texts(p page, sel string) []string {
	var out []string
	p.doc.Find(sel).Each(func(_ int, s *goquery.Selection) {
		out = append(out, strings.Join(strings.Fields(s.Text()), " "))
	})
	return out
}
