// Starts Swagger UI on /api/v1/docs (a file of its own, so the page's Content-Security-Policy
// allows no inline script). `openapi.json` is relative to the page: /api/v1/openapi.json.
// validatorUrl: null, so nothing is sent to an online validator.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
