package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Body limits: Bitrix24's frame and event forms are a few KiB.
const (
	frameBodyLimit = 64 << 10
	eventBodyLimit = 64 << 10
)

// Engine builds the gin engine with every route. Paths come from app.json
// (manifest), so the console, the bindings and the routes always agree.
func (h *Handlers) Engine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// No proxy is trusted unless the deployment says so: c.ClientIP must
	// not follow a client-supplied X-Forwarded-For.
	_ = r.SetTrustedProxies(h.cfg.TrustedProxies) // checked in New
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false

	m := h.cfg.Manifest
	// Routes Bitrix24 POSTs to cross-site; authenticated by stored state.
	exempt := []string{m.Install, m.Handler}
	for _, s := range h.surfaces {
		exempt = append(exempt, s.path)
	}
	for _, ev := range m.EventList() {
		exempt = append(exempt, ev.Handler)
	}
	for _, rb := range m.Robots {
		exempt = append(exempt, rb.Handler)
	}
	r.Use(h.requestID(), h.recoverPanics(), h.logRequests(), h.securityHeaders(), h.crossOrigin(exempt...))

	form := h.formBody(frameBodyLimit)
	landing := h.page(h.landing)
	// Bitrix24 POSTs to each of these; a GET or HEAD gets the landing page
	// (the vendor console checks handler URLs with HEAD and wants 200).
	post := func(path string, handlers ...gin.HandlerFunc) {
		r.POST(path, handlers...)
		r.GET(path, landing)
		r.HEAD(path, landing)
	}

	post(m.Install, form, h.limitInbound(routeInstall), h.page(h.install))

	// The lead page, framed by the lead card's tab and by the lead list's
	// row menu: one family of routes per surface, each accepting only
	// page contexts signed for it (tab.go).
	for _, s := range h.surfaces {
		act := func(fn func(*gin.Context, *action) error) gin.HandlerFunc { return h.page(h.withAction(s, fn)) }
		post(s.path, form, h.limitInbound(routeFrame), h.page(h.leadFrame(s)))
		post(s.path+"/remove", form, act(h.remove))
		post(s.path+"/"+routeConfirm, form, act(h.confirm))
		post(s.path+"/"+routeView, form, act(h.view))
		post(s.path+"/"+routeUndo, form, act(h.undo))
	}

	// The app's main page, framed from the portal's left menu.
	post(m.Handler, form, h.limitInbound(routeFrame), h.page(h.appPage))
	post(m.Handler+"/rebind", form, h.page(h.withAdmin(h.rebind)))
	post(m.Handler+"/bulk", form, h.page(h.withAdmin(h.bulk)))
	post(m.Handler+"/bulk/status", form, h.page(h.withAdmin(h.bulkStatus)))

	for _, ev := range m.EventList() {
		switch ev.Name {
		case "ONAPPINSTALL":
			// It starts a token request, like the installer.
			post(ev.Handler, h.formBody(eventBodyLimit), h.limitInbound(routeInstall), h.event(h.onAppInstall))
		case "ONAPPUNINSTALL":
			post(ev.Handler, h.formBody(eventBodyLimit), h.limitInbound(routeEvent), h.event(h.onAppUninstall))
		default:
			r.GET(ev.Handler, landing)
			r.HEAD(ev.Handler, landing)
		}
	}

	// Automation rules: Bitrix24's queue server posts a run like an event.
	for _, rb := range m.Robots {
		post(rb.Handler, h.formBody(eventBodyLimit), h.limitInbound(routeRobot), h.event(h.onRobot(rb)))
	}

	r.GET("/static/:name", h.asset)
	r.GET("/favicon.ico", h.favicon)
	r.HEAD("/favicon.ico", h.favicon)
	r.GET(healthzPath, h.healthz)
	r.GET(readyzPath, h.readyz)
	r.GET("/", landing)
	r.HEAD("/", landing)

	r.NoRoute(h.page(func(*gin.Context) error {
		return fail(http.StatusNotFound, "error.not_found_page", nil)
	}))
	r.NoMethod(h.page(func(*gin.Context) error {
		return fail(http.StatusMethodNotAllowed, "error.method_not_allowed", nil)
	}))
	return r
}

// asset serves an embedded static file by its content-hashed name, which
// changes whenever the content does: it may be cached for a year.
func (h *Handlers) asset(c *gin.Context) {
	a, ok := h.d.Assets.Lookup(c.Param("name"))
	if !ok {
		c.Status(http.StatusNotFound)
		return
	}
	c.Header("Cache-Control", "public, max-age=31536000, immutable")
	c.Data(http.StatusOK, a.ContentType, a.Body)
}
