// The API reference page (/reference): Swagger UI, bundled by Vite, renders the document the API serves at
// /openapi.json (relative to this page, so it works under API Gateway's stage path too). No CDN, no inline code.
import SwaggerUI from "swagger-ui-dist/swagger-ui-es-bundle.js";
import "swagger-ui-dist/swagger-ui.css";

SwaggerUI({
  url: new URL("openapi.json", window.location.href).href,
  dom_id: "#reference",
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false, // an API key typed into "Authorize" stays in memory, never in storage
  validatorUrl: null, // never send the document to swagger.io's validator
});
