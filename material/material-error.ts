/**
 * @deprecated There is one error type for bad input: import `ConfigError` from
 * config/config-error. This alias is the same class (kept until the last importer moves).
 */
export { ConfigError as MaterialError } from "../config/config-error";
