// Declarative SQL projections (pg_projector.projections in syncline.yaml): SQL with :json.path
// parameters bound from each event's envelope, so a read model needs no C++.
#pragma once

#include <libpq-fe.h>

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/config.hpp"
#include "common/json_path.hpp"
#include "common/pg_types.hpp"
#include "consumers/pg/projection.hpp"

namespace syncline::pg_projector {

namespace sql_param_oid = pg::type_oid;

// The parameter bound to $n, n = its position in CompiledSql::parameters plus one: its path into
// the envelope, as written without ':' and '?' ("payload.items.0.id"); an optional one (written
// with a trailing '?') binds NULL when the path is absent.
using SqlParameter = JsonPath;

struct CompiledSql {
  std::string sql;  // the statement with $1..$n in place of the named parameters
  std::vector<SqlParameter> parameters;
};

// Turns `:payload.x`, `:source.commit_lsn`, `:payload.items.0.id?` into $1, $2... (a path used
// twice gets one $n). Leaves alone `::casts`, string literals ('..', E'..'), "identifiers",
// comments (-- and nested /* */), $$dollar$$ / $tag$ quoted bodies and slices (a[1:2], a[i:j]): a
// ':' starts a parameter only after a character that cannot end an operand (not an identifier
// character, ':', ']' or ')') and before an identifier start. A trailing '?' is taken as the
// optional mark, so a jsonb `?` operator right after a parameter needs a space before it.
// Throws std::invalid_argument (saying where) for $1-style parameters, a first path step that is
// not an envelope field (schemas/envelope.schema.json: a typo would otherwise reject every event),
// the same path written both with and without '?', and unterminated quotes or comments.
CompiledSql compile_named_parameters(std::string_view sql);

// What a projection's setup and statements write where its configured `schema` goes.
inline constexpr std::string_view kSchemaPlaceholder = "{{schema}}";

// `sql` with every {{schema}} replaced by `schema` as a quoted identifier ("name"). Throws
// std::invalid_argument when `sql` holds the placeholder and `schema` is empty.
std::string expand_schema_placeholder(std::string_view sql, const std::string& schema);

// Whether the projection's setup or any of its statements writes {{schema}}.
bool uses_schema_placeholder(const SqlProjectionConfig& config);

// A Projection from SqlProjectionConfig: for each wanted event, the statements of every handler
// listing its type, in config order, with parameters bound from the envelope as text in the form
// PostgreSQL's input function for the inferred parameter type accepts (see sql_projection.cpp).
// Values only ever travel as bound parameters, never inside the SQL text.
//
// Owned by the projector service; like every Projection, used from its consumer thread only.
class SqlProjection final : public Projection {
 public:
  // Replaces {{schema}} by the configured schema and compiles every statement; throws
  // std::invalid_argument naming the projection, the handler's event types and the problem.
  explicit SqlProjection(SqlProjectionConfig config);

  const std::string& name() const override { return config_.name; }
  const std::vector<std::string>& topics() const override { return config_.topics; }
  bool wants(std::string_view topic, std::string_view type) const override;

  // Creates the configured schema (when set) and runs the configured setup SQL, then prepares every statement so that a syntax error or an
  // unknown table fails start-up (pg::PgError propagates) rather than the first matching event.
  void setup(Session& session) override;
  void plan(std::span<const Event* const> events, const std::unordered_set<std::size_t>& isolated,
            Session& session, PlanSink& sink) override;
  void reset() override;

 private:
  struct CompiledStatement {
    CompiledSql compiled;  // compiled.sql is what Statement::sql points to: never changed after construction
    std::string label;     // "projection p, handler 1 (types A, B), statement 2", for errors
    std::vector<Oid> parameter_types;  // from Session::parameter_types; valid when types_known
    bool types_known = false;
  };
  // One statement as run for one event type, with the "projection p, type t, statement n" prefix
  // of its rejection reasons built once.
  struct TypeStatement {
    std::size_t statement = 0;  // index into statements_
    std::string reason_prefix;
  };
  // string_view lookups without building a std::string per record.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
      return std::hash<std::string_view>{}(text);
    }
  };
  using TopicSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;
  using TypeMap = std::unordered_map<std::string, std::vector<TypeStatement>, StringHash, std::equal_to<>>;

  const std::vector<Oid>& types_of(CompiledStatement& statement, Session& session);

  SqlProjectionConfig config_;
  std::vector<CompiledStatement> statements_;  // built once; its strings' addresses must not change
  TopicSet topic_set_;
  TypeMap by_type_;
};

}  // namespace syncline::pg_projector
