/* no_entry.c — fixture: a valid shared object that exports no entry symbol, only this one.
 * The loader must refuse it as "missing entry symbol", naming the symbol it looked for.
 */
__attribute__((visibility("default"))) int something_else(void) { return 42; }
