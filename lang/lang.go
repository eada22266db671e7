// Package lang holds the user-facing text of the app: message catalogues
// keyed by Bitrix24's LANG codes (which are not ISO codes: "ua" is
// Ukrainian, "br" Brazilian Portuguese, "la" Spanish, "sc"/"tc" simplified
// and traditional Chinese), with CLDR plural rules from go-i18n and English
// as the fallback for anything missing.
package lang

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed locales/*.toml
var locales embed.FS

// Fallback is the language used when a code is unknown or a key missing.
const Fallback = "en"

// tags maps Bitrix24 LANG codes to BCP 47 tags (for plural rules and the
// HTML lang attribute). Source: b24restdocs bx24-get-lang.md.
var tags = map[string]language.Tag{
	"en": language.English,
	"ru": language.Russian,
	"de": language.German,
	"la": language.MustParse("es"),
	"br": language.MustParse("pt-BR"),
	"fr": language.French,
	"it": language.Italian,
	"pl": language.Polish,
	"tr": language.Turkish,
	"ua": language.Ukrainian,
	"kz": language.Kazakh,
	"ja": language.Japanese,
	"sc": language.MustParse("zh-Hans"),
	"tc": language.MustParse("zh-Hant"),
	"vn": language.Vietnamese,
	"id": language.Indonesian,
	"ms": language.Malay,
	"th": language.Thai,
	"ar": language.Arabic,
}

// rtl lists the right-to-left languages among the supported codes.
var rtl = map[string]bool{"ar": true}

// Bundle holds every catalogue. It is read-only after Load and safe for
// concurrent use.
type Bundle struct {
	bundle *i18n.Bundle
	codes  []string // codes with a catalogue, sorted
	keys   map[string]map[string]bool
	// matcher picks a catalogue for a browser's languages; matched[i] is
	// the code of its i-th supported tag (the fallback first).
	matcher language.Matcher
	matched []string
}

// Load parses the embedded catalogues (locales/<code>.toml).
func Load() (*Bundle, error) {
	b := &Bundle{bundle: i18n.NewBundle(language.English), keys: map[string]map[string]bool{}}
	b.bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	files, err := fs.Glob(locales, "locales/*.toml")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		code := strings.TrimSuffix(path.Base(f), ".toml")
		tag, ok := tags[code]
		if !ok {
			return nil, fmt.Errorf("lang: %s: not a Bitrix24 LANG code", f)
		}
		data, err := locales.ReadFile(f)
		if err != nil {
			return nil, err
		}
		// go-i18n takes the language from the file name, so name it by the
		// BCP 47 tag rather than the Bitrix24 code.
		mf, err := b.bundle.ParseMessageFileBytes(data, tag.String()+".toml")
		if err != nil {
			return nil, fmt.Errorf("lang: %s: %w", f, err)
		}
		b.keys[code] = map[string]bool{}
		for _, m := range mf.Messages {
			b.keys[code][m.ID] = true
		}
		b.codes = append(b.codes, code)
	}
	sort.Strings(b.codes)
	if b.keys[Fallback] == nil {
		return nil, fmt.Errorf("lang: no %s catalogue", Fallback)
	}
	supported := []language.Tag{tags[Fallback]}
	b.matched = []string{Fallback}
	for _, code := range b.codes {
		if code != Fallback {
			supported = append(supported, tags[code])
			b.matched = append(b.matched, code)
		}
	}
	b.matcher = language.NewMatcher(supported)
	return b, nil
}

// Codes returns the LANG codes that have a catalogue.
func (b *Bundle) Codes() []string { return append([]string(nil), b.codes...) }

// Keys returns the message ids of one catalogue.
func (b *Bundle) Keys(code string) []string {
	var out []string
	for k := range b.keys[code] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Normalize turns whatever arrived as LANG into a supported code: lower
// case, trimmed, and the fallback when unknown.
func (b *Bundle) Normalize(code string) string {
	code = strings.ToLower(strings.TrimSpace(code))
	if _, ok := b.keys[code]; ok {
		return code
	}
	return Fallback
}

// For returns a localizer for a Bitrix24 LANG code.
func (b *Bundle) For(code string) *Localizer {
	code = b.Normalize(code)
	return &Localizer{
		code: code,
		loc:  i18n.NewLocalizer(b.bundle, tags[code].String(), language.English.String()),
	}
}

// Localizer renders messages in one language.
type Localizer struct {
	code string
	loc  *i18n.Localizer
}

// Code returns the Bitrix24 LANG code.
func (l *Localizer) Code() string { return l.code }

// Tag returns the BCP 47 tag, for <html lang>.
func (l *Localizer) Tag() string { return tags[l.code].String() }

// Dir returns "rtl" or "ltr", for <html dir>.
func (l *Localizer) Dir() string {
	if rtl[l.code] {
		return "rtl"
	}
	return "ltr"
}

// T renders message id with template data (pairs of key, value).
func (l *Localizer) T(id string, kv ...any) string {
	return l.render(id, nil, kv)
}

// N renders a plural message id for count; the template sees .Count too.
func (l *Localizer) N(id string, count int, kv ...any) string {
	return l.render(id, count, append(kv, "Count", count))
}

func (l *Localizer) render(id string, count any, kv []any) string {
	data := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := kv[i].(string); ok {
			data[k] = kv[i+1]
		}
	}
	s, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count})
	if err != nil && s == "" {
		// A missing key is a bug caught by the catalogue test; show the id
		// rather than an empty string so it is visible, never a panic.
		return id
	}
	return s
}

// Known reports whether code (as Bitrix24 sends LANG) has a catalogue.
func (b *Bundle) Known(code string) bool {
	_, ok := b.keys[strings.ToLower(strings.TrimSpace(code))]
	return ok
}

// Match returns the LANG code of the catalogue that best serves a
// browser's Accept-Language header, for pages opened outside Bitrix24
// (which sends no LANG there): "uk" finds ua, "zh-TW" tc, "pt" br, "es-MX"
// la. The fallback when nothing matches or the header does not parse.
func (b *Bundle) Match(acceptLanguage string) string {
	want, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(want) == 0 {
		return Fallback
	}
	_, i, conf := b.matcher.Match(want...)
	if conf == language.No {
		return Fallback
	}
	return b.matched[i]
}
