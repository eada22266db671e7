package lang

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/language"
)

// mustLoad loads the embedded catalogues.
func mustLoad(t *testing.T) *Bundle {
	t.Helper()
	b, err := Load()
	require.NoError(t, err)
	return b
}

func TestEveryCatalogueHasEveryKey(t *testing.T) {
	b := mustLoad(t)
	require.NoError(t, warm(b), "every catalogue parses")
	want := b.Keys(Fallback)
	require.NotEmpty(t, want)
	for _, code := range b.Codes() {
		assert.ElementsMatch(t, want, b.Keys(code), "catalogue %s must define exactly the English keys", code)
	}
}

func TestFallbackAndPlurals(t *testing.T) {
	b := mustLoad(t)
	en := b.For("EN ")
	assert.Equal(t, "en", en.Code())
	assert.Equal(t, "1 linked contact", en.N("tab.count", 1))
	assert.Equal(t, "3 linked contacts", en.N("tab.count", 3))
	assert.Equal(t, `3 contacts unlinked from lead “Big deal”. The contacts themselves stay in the CRM.`, en.N("result.success", 3, "Title", "Big deal"))
	unknown := b.For("xx")
	assert.Equal(t, "en", unknown.Code())
	assert.Equal(t, "ltr", unknown.Dir())
	assert.Equal(t, "missing.key", en.T("missing.key"))
}

// TestUndoMessagesAgreeWithTheNumber checks the issue-5 plurals where
// the grammar bites: Russian (one/few/many) and Arabic (six forms).
func TestUndoMessagesAgreeWithTheNumber(t *testing.T) {
	b := mustLoad(t)
	ru := b.For("ru")
	for n, want := range map[int]string{
		1:  "1 контакт снова привязан к лиду «Сделка».",
		3:  "3 контакта снова привязаны к лиду «Сделка».",
		5:  "5 контактов снова привязано к лиду «Сделка».",
		21: "21 контакт снова привязан к лиду «Сделка».",
	} {
		assert.Equal(t, want, ru.N("undo.done", n, "Title", "Сделка"))
	}
	assert.Equal(t, "Отменить можно в течение 10 минут.", ru.N("undo.hint", 10))
	assert.Equal(t, "Отменить можно в течение 1 минуты.", ru.N("undo.hint", 1))
	assert.Equal(t, "Отвязать 3 контакта от этого лида? Сами контакты останутся в CRM.", ru.N("tab.confirm", 3))

	ar := b.For("ar")
	assert.Equal(t, "rtl", ar.Dir())
	assert.Equal(t, "يمكنك التراجع خلال 10 دقائق.", ar.N("undo.hint", 10))
	assert.Equal(t, "فُصلت جهتا اتصال", ar.N("history.unlinked", 2))

	en := b.For("en")
	assert.Equal(t, "Unlink 3 contacts from this lead? The contacts themselves stay in the CRM.", en.N("tab.confirm", 3))
	assert.Equal(t, "You can undo this for 10 minutes.", en.N("undo.hint", 10))
}

func TestRussianPluralsAgreeWithTheNumber(t *testing.T) {
	b := mustLoad(t)
	ru := b.For("ru")
	const stays = " Из CRM ничего не удалено."
	cases := []struct {
		n            int
		count, saved string
	}{
		{0, "0 связанных контактов", "0 контактов отвязано от лида «Сделка»." + stays},
		{1, "1 связанный контакт", "1 контакт отвязан от лида «Сделка»." + stays},
		{2, "2 связанных контакта", "2 контакта отвязаны от лида «Сделка»." + stays},
		{5, "5 связанных контактов", "5 контактов отвязано от лида «Сделка»." + stays},
		{11, "11 связанных контактов", "11 контактов отвязано от лида «Сделка»." + stays},
		{21, "21 связанный контакт", "21 контакт отвязан от лида «Сделка»." + stays},
		{22, "22 связанных контакта", "22 контакта отвязаны от лида «Сделка»." + stays},
		{101, "101 связанный контакт", "101 контакт отвязан от лида «Сделка»." + stays},
	}
	for _, c := range cases {
		assert.Equal(t, c.count, ru.N("tab.count", c.n))
		assert.Equal(t, c.saved, ru.N("result.success", c.n, "Title", "Сделка"))
	}
}

// probeCounts covers every CLDR integer pattern the app can meet (0-200,
// round millions) plus decimals, which select "other" in Slavic languages.
var probeCounts = func() []any {
	out := []any{"0.5", "1.5", "2.5", 1000, 1000000, 2000000}
	for n := 0; n <= 200; n++ {
		out = append(out, n)
	}
	return out
}()

// cldrForms lists, sorted, the plural categories that go-i18n's CLDR rules
// use for tag, found by rendering a probe message whose forms name themselves.
func cldrForms(t *testing.T, tag language.Tag) []string {
	probe := i18n.NewBundle(tag)
	probe.MustAddMessages(tag, &i18n.Message{ID: "probe",
		Zero: "zero", One: "one", Two: "two", Few: "few", Many: "many", Other: "other"})
	loc := i18n.NewLocalizer(probe, tag.String())
	seen := map[string]bool{"other": true}
	for _, n := range probeCounts {
		form, err := loc.Localize(&i18n.LocalizeConfig{MessageID: "probe", PluralCount: n})
		require.NoError(t, err)
		seen[form] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// forms returns the plural forms a message defines, keyed by CLDR category.
func forms(m *i18n.Message) map[string]string {
	out := map[string]string{}
	for form, text := range map[string]string{"zero": m.Zero, "one": m.One, "two": m.Two, "few": m.Few, "many": m.Many, "other": m.Other} {
		if text != "" {
			out[form] = text
		}
	}
	return out
}

var placeholder = regexp.MustCompile(`\{\{\s*\.(\w+)\s*\}\}`)

func placeholders(s string) map[string]bool {
	out := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
		out[m[1]] = true
	}
	return out
}

func parseCatalogue(t *testing.T, code string) map[string]*i18n.Message {
	data, err := locales.ReadFile("locales/" + code + ".toml")
	require.NoError(t, err)
	mf, err := i18n.ParseMessageFileBytes(data, tags[code].String()+".toml",
		map[string]i18n.UnmarshalFunc{"toml": toml.Unmarshal})
	require.NoError(t, err)
	out := map[string]*i18n.Message{}
	for _, m := range mf.Messages {
		out[m.ID] = m
	}
	return out
}

func TestCataloguesUseTheLanguagesPluralFormsAndPlaceholders(t *testing.T) {
	b := mustLoad(t)
	en := parseCatalogue(t, Fallback)
	for _, code := range b.Codes() {
		t.Run(code, func(t *testing.T) {
			cldr := cldrForms(t, tags[code])
			for id, m := range parseCatalogue(t, code) {
				src, ok := en[id]
				require.True(t, ok, "%s is not in en.toml", id)
				got := forms(m)
				if len(forms(src)) > 1 {
					assert.Equal(t, cldr, slices.Sorted(maps.Keys(got)), "%s must define exactly the CLDR plural forms", id)
				} else {
					assert.Equal(t, []string{"other"}, slices.Sorted(maps.Keys(got)), "%s is not a plural message", id)
				}
				want := placeholders(src.Other)
				for form, text := range got {
					have := placeholders(text)
					for v := range have {
						assert.True(t, want[v], "%s (%s) uses unknown placeholder .%s", id, form, v)
					}
					for v := range want {
						// Only .Count may be spelled out in words (Arabic
						// zero/one/two); "other" always shows the number.
						if v != "Count" || form == "other" {
							assert.True(t, have[v], "%s (%s) lost placeholder .%s", id, form, v)
						}
					}
				}
			}
		})
	}
}

func TestEveryMessageRendersInEveryLanguage(t *testing.T) {
	b := mustLoad(t)
	require.NoError(t, warm(b))
	en := parseCatalogue(t, Fallback)
	for _, code := range b.Codes() {
		t.Run(code, func(t *testing.T) {
			// No English fallback: a missing key or plural form fails here.
			strict := i18n.NewLocalizer(b.langs[code].bundle, tags[code].String())
			for id, src := range en {
				counts := []any{nil}
				if len(forms(src)) > 1 {
					counts = []any{0, 1, 2, 3, 5, 11, 21, 101, 1000000}
				}
				for _, n := range counts {
					data := map[string]any{"ID": 7, "Title": "Big deal", "Code": "ACCESS_DENIED", "Event": "ONAPPINSTALL", "Tab": "Tab", "Scopes": "crm", "Reason": "Bitrix24 was busy", "Number": 4, "Count": n}
					s, tag, err := strict.LocalizeWithTag(&i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: n})
					require.NoError(t, err, "%s (count %v)", id, n)
					assert.Equal(t, tags[code], tag, "%s came from another catalogue", id)
					assert.NotEmpty(t, strings.TrimSpace(s), "%s (count %v)", id, n)
					assert.NotContains(t, s, "{{", "%s (count %v)", id, n)
					assert.NotContains(t, s, "<no value>", "%s (count %v)", id, n)
				}
			}
			l := b.For(code)
			for _, n := range []int{0, 1, 2, 3, 5, 11, 21, 101} {
				s := l.N("tab.count", n)
				assert.NotEqual(t, "tab.count", s, "count %d", n)
				assert.NotContains(t, s, "{{", "count %d", n)
			}
		})
	}
}

// TestOneVocabulary holds the catalogues to issue 13's wording: the button
// is "Remove all contacts", and everything else, the admins' page (app.*,
// history.*) included, says "unlink", so nobody reads that a contact was
// deleted.
func TestOneVocabulary(t *testing.T) {
	b := mustLoad(t)
	en := parseCatalogue(t, Fallback)
	button := en["tab.remove_button"].Other
	for id, m := range en {
		if id == "tab.remove_button" {
			continue
		}
		for form, text := range forms(m) {
			rest := strings.ReplaceAll(text, "“"+button+"”", "")
			assert.NotContains(t, strings.ToLower(rest), "remov", "%s (%s) must say unlink, not remove: %q", id, form, text)
		}
	}
	assert.Equal(t, "Contacts unlinked", en["result.success_title"].Other)
	assert.Equal(t, "3 contacts unlinked from lead “Big deal”. The contacts themselves stay in the CRM.",
		b.For("en").N("result.success", 3, "Title", "Big deal"))
	// Every language says, after the removal, that the CRM keeps the
	// contacts (each names the CRM in that sentence).
	for _, code := range b.Codes() {
		l := b.For(code)
		for _, n := range []int{1, 2, 3, 5, 21} {
			assert.Contains(t, l.N("result.success", n, "Title", "X"), "CRM", "%s result.success(%d)", code, n)
		}
		assert.Contains(t, l.T("result.success_uncounted", "Title", "X"), "CRM", code)
		assert.Contains(t, l.T("tab.remove_hint"), "CRM", code)
	}
}

func TestMatchAcceptLanguage(t *testing.T) {
	b := mustLoad(t)
	for header, want := range map[string]string{
		"ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7": "ru",
		"ar":                                  "ar",
		"ar-EG,ar;q=0.9":                      "ar",
		"de-CH":                               "de",
		"uk-UA,uk;q=0.9":                      "ua",
		"kk":                                  "kz",
		"pt-BR":                               "br",
		"pt-PT,pt;q=0.9":                      "br",
		"es-MX,es;q=0.9":                      "la",
		"zh-TW":                               "tc",
		"zh-HK":                               "tc",
		"zh-CN,zh;q=0.9":                      "sc",
		"vi":                                  "vn",
		"ja-JP":                               "ja",
		"fr-CA, en;q=0.5":                     "fr",
		"nb-NO, fr;q=0.6":                     "fr",
		"nb-NO":                               "en",
		"en-GB":                               "en",
		"":                                    "en",
		"*":                                   "en",
		"not a header;;;":                     "en",
	} {
		assert.Equal(t, want, b.Match(header), "Accept-Language: %q", header)
	}
	assert.True(t, b.Known("RU "))
	assert.False(t, b.Known("xx"))
	assert.False(t, b.Known(""))
}

// warm parses every catalogue now (they load lazily) and reports the
// first that fails.
func warm(b *Bundle) error {
	for _, code := range b.codes {
		if err := b.load(code, b.langs[code]); err != nil {
			return err
		}
	}
	return nil
}
