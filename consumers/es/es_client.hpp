// EsClient: the es-projector's requests to Elasticsearch / OpenSearch — index + alias setup,
// versioned bulk writes classified per item, document lookups and stale-proof truncates.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/config.hpp"
#include "common/http_client.hpp"
#include "consumers/es/bulk_action.hpp"

namespace syncline::es_projector {

// index.gc_deletes when nothing else is configured (es_projector.delete_retention_ms).
inline constexpr std::chrono::milliseconds kDefaultDeleteRetention{24 * 60 * 60 * 1000};

// Every failure of a request as a whole. retriable(): sending it again later may succeed.
// Messages never hold credentials (paths, not URLs; transport messages come redacted).
class SearchError : public std::runtime_error {
 public:
  SearchError(const std::string& what, bool retriable) : std::runtime_error(what), retriable_(retriable) {}
  bool retriable() const noexcept { return retriable_; }

 private:
  bool retriable_;
};

// The engine is unreachable or overloaded: connection refused, timeout, 408, 429, 5xx.
// Always retriable. status() is 0 for a transport failure.
class SearchUnavailable : public SearchError {
 public:
  SearchUnavailable(const std::string& what, long status) : SearchError(what, true), status_(status) {}
  long status() const noexcept { return status_; }

 private:
  long status_;
};

// The engine refused the request (4xx): the same request will be refused again.
class SearchRequestError : public SearchError {
 public:
  SearchRequestError(const std::string& what, long status, std::string error_type, std::string reason)
      : SearchError(what, false),
        status_(status),
        error_type_(std::move(error_type)),
        reason_(std::move(reason)) {}
  long status() const noexcept { return status_; }
  const std::string& error_type() const noexcept { return error_type_; }  // the engine's error.type
  const std::string& reason() const noexcept { return reason_; }          // the engine's error.reason

 private:
  long status_;
  std::string error_type_;
  std::string reason_;
};

// An index definition or cluster state an operator must fix (a concrete index where the alias
// belongs, an alias over several indices without a write index, syncline_version mapped as
// something else than a long). A SearchRequestError, so callers that treat those as fatal do.
class IndexSetupError : public SearchRequestError {
 public:
  explicit IndexSetupError(const std::string& what)
      : SearchRequestError(what, 0, "syncline_index_setup", what) {}
};

// A physical index as syncline-ctl's resync sees it: its aliases and its mapping's _meta.
struct IndexInfo {
  std::string name;
  std::vector<std::string> aliases;
  nlohmann::json meta = nlohmann::json::object();  // mappings._meta ({} when absent)
};

// Owned by the es-projector's consumer thread (one libcurl handle: not thread-safe).
// What a bulk answer leaves to do, the same for the projector and a resync replay: the actions
// to send again (the failed ones, and every later action on the same document after them: an
// equal version, from the same transaction, would otherwise let the older one win), with the
// first retry's reason. `settled` is called for every other action with its result.
struct BulkRetry {
  std::vector<const BulkAction*> again;
  std::string reason;
};
BulkRetry sort_bulk_results(const std::vector<const BulkAction*>& actions, const std::vector<ItemResult>& results,
                            const std::function<void(const BulkAction&, const ItemResult&)>& settled);

// Whether the engine refused a request of several actions as too large (413 for every item):
// resent whole it can never fit, so the sender halves it.
bool too_large_for_engine(std::size_t actions, const std::vector<ItemResult>& results);

class EsClient : public DocumentLookup {
 public:
  // Batches above this many documents are fetched in several _mget requests.
  static constexpr std::size_t kMaxMgetDocuments = 1000;
  // The engine refuses a whole bulk request with a longer _id (both ES 8 and OpenSearch 2.9+),
  // so such an action is rejected here instead of sinking its neighbours.
  static constexpr std::size_t kMaxIdBytes = 512;

  // delete_retention: index.gc_deletes of every index this client creates or adopts.
  EsClient(const SearchConfig& config, bool gzip,
           std::chrono::milliseconds delete_retention = kDefaultDeleteRetention);

  // The HTTP options EsClient uses for `config` (exposed for tests).
  static http::ClientOptions client_options(const SearchConfig& config, bool gzip);

  // Makes the alias `index.name` usable: an existing alias is used as it is, but its index gets
  // index.gc_deletes = delete_retention (logged when it changes) and the bookkeeping fields'
  // mappings; otherwise the physical index "<name>_v1" is created with the configured settings and
  // mappings, kVersionField (long), kTableField/kKeyField (keyword), kSeqField (long),
  // index.gc_deletes = delete_retention (tombstones of deleted documents must outlive older writes
  // still on their way), and the alias in the same request. Safe against another instance doing
  // the same. Throws IndexSetupError when a concrete index is named like the alias.
  void ensure_index(const EsIndexConfig& index);

  // Creates the physical index `physical` with the settings and mappings ensure_index() would
  // give it (kVersionField, gc_deletes), WITHOUT the alias, and `meta` as the mapping's _meta
  // (merged over a configured _meta). A resync builds its shadow index this way. Throws
  // SearchRequestError (resource_already_exists_exception when it exists).
  void create_index(const EsIndexConfig& index, const std::string& physical,
                    const nlohmann::json& meta = nlohmann::json::object());

  // Every index whose name matches `pattern` (a wildcard such as "messages_v*"), with its aliases
  // and _meta; empty when none matches.
  std::vector<IndexInfo> indices(const std::string& pattern);

  // Moves `alias` from index `from` to index `to` in ONE POST /_aliases request, which the engine
  // applies atomically: a search on the alias sees either index, never none. Throws
  // SearchRequestError when `from` does not hold the alias (nothing is changed then).
  void swap_alias(const std::string& alias, const std::string& from, const std::string& to);

  // Replaces the keys of `meta` in the index's mapping _meta (other keys stay).
  void merge_meta(const std::string& physical, const nlohmann::json& meta);
  // Sets or lifts index.blocks.write on a physical index. While it is set, writes to the index are
  // answered 403 cluster_block_exception, which bulk() classifies as retry: a writer waits, it
  // does not dead-letter.
  void set_write_block(const std::string& physical, bool blocked);

  // Deletes a physical index; one that does not exist is not an error.
  void delete_index(const std::string& physical);

  // The number of documents searchable in `index` (an alias or an index).
  std::int64_t count(const std::string& index);

  // The index `alias` points to (its write index when it points to several). Throws
  // SearchRequestError (status 404) when the alias does not exist.
  std::string physical_index(const std::string& alias);

  // One POST /_bulk with every action, in order; one result per action, same order.
  // Whole-request failures that may pass later (transport, 408, 429, 5xx, an unreadable answer)
  // do not throw: every item comes back as retry, with the reason and the request's status.
  // A 413 also makes every item retry with status 413: the body is too large, the caller must
  // send fewer actions at once. Other whole-request 4xx throw SearchRequestError; transport
  // failures that retrying cannot fix (TLS verification, a malformed URL) throw SearchError.
  // Actions the engine would refuse as a whole request (an _id over kMaxIdBytes, a negative
  // version, an index action without a source) are rejected here, status 0, and not sent.
  // require_alias: writes to a name that is not an alias fail (retry, index_not_found) instead
  // of auto-creating a concrete index where the alias belongs; false to write to a physical index.
  std::vector<ItemResult> bulk(const std::vector<const BulkAction*>& actions, bool require_alias = true);

  // DocumentLookup: realtime _mget; nullopt for missing documents and missing indices.
  // Throws SearchUnavailable on transport failures and 5xx.
  std::map<std::pair<std::string, std::string>, std::optional<CurrentDocument>> fetch(
      const std::vector<std::pair<std::string, std::string>>& documents) override;

  // Deletes every document of `request.index` of table `request.table` whose (kVersionField,
  // kSeqField) is below (request.version, request.seq), after a refresh so that every
  // acknowledged write is seen, and returns how many were deleted. Each is deleted with
  // version_type=external_gte at request.version - 1 (at request.version for one of the
  // truncate's own transaction), so a newer write racing the truncate wins, and the tombstone
  // keeps older replays out. (Not _delete_by_query: a minimal Elasticsearch distribution has no reindex
  // module, and its deletes would not leave versioned tombstones.) An index that does not exist
  // has nothing to delete. Idempotent: on SearchUnavailable, call it again.
  std::uint64_t delete_older(const DeleteOlder& request);

  // Makes every write so far visible to search.
  void refresh(const std::string& alias);

  // GET /_cluster/health answers 200 with status green or yellow. Never throws.
  bool healthy();

  // The NDJSON body of a bulk request: per action a metadata line (_index, _id, version,
  // version_type external_gte) and, for index actions, the source line; ends with a newline.
  static std::string bulk_body(const std::vector<const BulkAction*>& actions);

  // The per-item results of a bulk response for `count` actions. An unreadable response, or one
  // with another number of items, makes every item retry (versioned writes may be re-sent).
  static std::vector<ItemResult> parse_bulk_response(std::string_view body, std::size_t count);

 private:
  std::optional<std::string> find_alias_target(const std::string& alias);
  // An index behind an existing alias: gc_deletes and the bookkeeping mappings, as if created.
  void adopt_index(const std::string& alias, const std::string& physical);

  http::HttpClient client_;
  std::chrono::milliseconds delete_retention_;
};

}  // namespace syncline::es_projector
