// swagger-ui-dist ships no types: the one call the reference page makes.
declare module "swagger-ui-dist/swagger-ui-es-bundle.js" {
  interface SwaggerUIOptions {
    url: string;
    dom_id: string;
    deepLinking?: boolean;
    tryItOutEnabled?: boolean;
    persistAuthorization?: boolean;
    validatorUrl?: string | null;
  }
  export default function SwaggerUI(options: SwaggerUIOptions): unknown;
}
