package handlers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
)

// problem is the one error type handlers return: an HTTP status, the
// message shown to the user (a catalogue key) and the cause for the log.
// Users never see the cause.
type problem struct {
	status int
	key    string // catalogue key of the explanation
	args   []any  // the explanation's template data, as name/value pairs
	code   string // Bitrix24 error code to show, if any
	cause  error
}

// text renders the explanation in a language; the code is always there
// for the explanations that quote it.
func (p *problem) text(loc *lang.Localizer) string {
	return loc.T(p.key, append([]any{"Code", p.code}, p.args...)...)
}

func (p *problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%d %s: %v", p.status, p.key, p.cause)
	}
	return fmt.Sprintf("%d %s", p.status, p.key)
}

func (p *problem) Unwrap() error { return p.cause }

func fail(status int, key string, cause error) *problem {
	return &problem{status: status, key: key, cause: cause}
}

// asProblem maps any error to a problem; unknown errors are internal.
func asProblem(err error) *problem {
	var p *problem
	if errors.As(err, &p) {
		return p
	}
	return fail(http.StatusInternalServerError, "error.internal", err)
}

// adminFailed renders the admins' page after its action failed (a
// re-bind, a bulk run's button), with a banner titled title: a session
// Bitrix24 no longer accepts asks the admin to reopen the page, as on
// every other page; a refusal or fault of Bitrix24 is explained as the
// tab explains it (upstream.go), with its code; any other failure says
// what its problem says.
func (h *Handlers) adminFailed(c *gin.Context, page adminPage, loc *lang.Localizer, title string, err error) {
	var pr, asPr *problem
	var be *bitrix24.Error
	switch {
	case bitrix24.IsAuthFailure(err) || errors.Is(err, errSessionDead):
		pr = fail(http.StatusUnauthorized, "error.session_expired_app", err)
	case errors.As(err, &asPr):
		pr = asPr
	case errors.As(err, &be) || explain(err) != unknownUpstream:
		pr = fail(upstreamStatus(err), upstreamKey(err), err)
		pr.code = upstreamCode(err)
	default:
		pr = asProblem(err)
	}
	h.logProblem(c, pr)
	page.Admin = true
	page.Banner = &banner{Kind: "danger", Title: title, Text: pr.text(loc), Code: pr.code}
	h.render(c, pr.status, "app", page)
}

// errorPage is the data of error.html.
type errorPage struct {
	base
	Title, Text, Code string
}

// page adapts a handler that returns an error to gin, rendering errors as
// a page in the user's language (pageLang: Bitrix24's LANG, else the
// browser's).
func (h *Handlers) page(fn func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		err := fn(c)
		if err == nil {
			return
		}
		p := asProblem(err)
		h.logProblem(c, p)
		loc := h.pageLang(c)
		h.render(c, p.status, "error", errorPage{
			base:  h.base(loc),
			Title: loc.T("error.unverified_title"),
			Text:  p.text(loc),
			Code:  p.code,
		})
	}
}

// event adapts an event handler: Bitrix24's queue reads only the status.
func (h *Handlers) event(fn func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		err := fn(c)
		if err == nil {
			c.JSON(http.StatusOK, gin.H{"status": "success"})
			return
		}
		p := asProblem(err)
		h.logProblem(c, p)
		c.JSON(p.status, gin.H{"status": "error", "error": p.key})
	}
}

func (h *Handlers) logProblem(c *gin.Context, p *problem) {
	attrs := []any{"route", c.FullPath(), "status", p.status, "problem", p.key}
	if p.cause != nil {
		attrs = append(attrs, "err", p.cause.Error())
	}
	if p.status >= 500 {
		h.d.Logger.ErrorContext(c.Request.Context(), "request failed", attrs...)
	} else {
		h.d.Logger.InfoContext(c.Request.Context(), "request refused", attrs...)
	}
}
