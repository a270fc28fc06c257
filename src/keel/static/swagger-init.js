// Boots Swagger UI from Keel's own assets. Kept out of the HTML so the docs page needs no
// inline script and its Content-Security-Policy can say `script-src 'self'`.
(function () {
  var config = document.currentScript.dataset;
  window.ui = SwaggerUIBundle({
    url: config.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
