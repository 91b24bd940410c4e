/* risk_service.h — the "limits" service of the risk layer (librisk.so, layer "risk" 1.0.0):
 * pre-trade risk shared by every strategy plugin that requires the layer. Each strategy books
 * its orders into its own book; positions are limited per book and symbol, and the firm's
 * gross exposure (every book's |position| x price, summed) is limited across all books. One
 * copy of this state exists per engine, however many plugins (and versions of them) use it.
 *
 *   const risk_service* risk = ctx.service<risk_service>("risk", "limits");
 *   char why[160];
 *   if (risk->book(RISK_BOOK_MOMENTUM, "ACME", +100, 10125, why, sizeof why) != RISK_OK)
 *     return fail("RiskRejected", why);
 *
 * Every function is thread-safe. Prices and exposure are in cents. Compiles as C and C++.
 */
#ifndef EMBER_EXAMPLES_RISK_SERVICE_H_
#define EMBER_EXAMPLES_RISK_SERVICE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { RISK_OK = 0, RISK_POSITION_LIMIT = 1, RISK_EXPOSURE_LIMIT = 2, RISK_BAD_ARGUMENT = 3 };
enum { RISK_BOOK_MOMENTUM = 0, RISK_BOOK_MEAN_REVERSION = 1, RISK_BOOKS = 4 };

typedef struct risk_service {
  /* Books an order of `book` (0..RISK_BOOKS-1) for `symbol` (1-8 characters): signed_qty > 0
   * buys, < 0 sells, at price (> 0). Refused, with the reason in why[0..why_size), if it would
   * take the book's position in the symbol past the position limit, or the firm's gross
   * exposure past the exposure limit; an order that reduces either always passes. */
  int (*book)(int book, const char* symbol, int64_t signed_qty, int64_t price, char* why,
              size_t why_size);
  /* The book's position in symbol (0 if none). */
  int64_t (*position)(int book, const char* symbol);
  /* The firm's gross exposure, and its limit. */
  int64_t (*gross_exposure)(void);
  int64_t (*exposure_limit)(void);
} risk_service;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EMBER_EXAMPLES_RISK_SERVICE_H_ */
