#include "core/node_tools.h"

#include <boost/asio/post.hpp>
#include <utility>

#include <spdlog/spdlog.h>

#include "lotus/strings.h"

namespace lotus {

std::shared_ptr<NodeTools> NodeTools::create(Bus& bus, llm::ToolRegistry& registry, Changed changed,
                                             std::chrono::milliseconds refresh) {
  return std::shared_ptr<NodeTools>(new NodeTools(bus, registry, std::move(changed), refresh));
}

NodeTools::NodeTools(Bus& bus, llm::ToolRegistry& registry, Changed changed,
                     std::chrono::milliseconds refresh)
    : bus_(bus),
      registry_(registry),
      changed_(std::move(changed)),
      refresh_(refresh),
      incoming_(boost::asio::make_strand(bus.executor())) {}

Status NodeTools::start() {
  if (bus_.node_id().empty() || running_.exchange(true)) return absl::OkStatus();
  std::weak_ptr<NodeTools> weak = weak_from_this();
  // Taps run on the delivery thread: the work (schemas to compile, events to
  // publish) goes to the pool, one event at a time in the order delivered.
  auto on_pool = [weak, executor = incoming_](void (NodeTools::*handle)(const EventPtr&)) {
    Subscriber subscriber;
    subscriber.tap = [weak, executor, handle](const EventPtr& event) {
      boost::asio::post(executor, [weak, handle, event] {
        auto self = weak.lock();
        if (self && self->running_.load()) ((*self).*handle)(event);
      });
    };
    return subscriber;
  };
  for (auto [channel, handle] :
       {std::pair{kChannel, &NodeTools::on_announcement},
        std::pair{std::string_view("system.node_left"), &NodeTools::on_node_left}}) {
    auto id = bus_.subscribe(channel, SubscriptionFilter(), on_pool(handle));
    if (!id.ok()) return id.status();
    subscriptions_.push_back(*id);
  }
  announce(true);
  timer_ = PeriodicTimer::start(bus_.executor(), refresh_, [weak] {
    if (auto self = weak.lock()) self->announce(false);
  });
  return absl::OkStatus();
}

void NodeTools::stop() {
  if (!running_.exchange(false)) return;
  if (timer_) timer_->stop();
  for (SubscriptionId id : subscriptions_) bus_.unsubscribe(id);
  subscriptions_.clear();
  // The last word: this node offers nothing any more (node_left follows
  // when the bus stops; this covers a nucleus that stops on a bus that stays).
  Json data = {{"node", bus_.node_id()}, {"tools", Json::array()}, {"ask", false}};
  std::lock_guard lock(announce_mutex_);
  (void)bus_.publish(Event::make(std::string(kChannel), "nucleus", std::move(data)));
}

void NodeTools::local_changed() {
  if (!running_.load() || queued_.exchange(true)) return;
  std::weak_ptr<NodeTools> weak = weak_from_this();
  boost::asio::post(bus_.executor(), [weak] {
    auto self = weak.lock();
    if (!self) return;
    self->queued_.store(false);
    if (self->running_.load()) self->announce(false);
  });
}

void NodeTools::announce(bool ask) {
  // One at a time, each publishing what it read: two announcements racing
  // on two threads could otherwise publish an older state last.
  std::lock_guard lock(announce_mutex_);
  Json data = {{"node", bus_.node_id()}, {"tools", registry_.local_tools_json()}, {"ask", ask}};
  if (local_content_) {
    Json content = local_content_();
    if (content.is_array() && !content.empty()) data["mcp"] = std::move(content);
  }
  auto sent = bus_.publish(Event::make(std::string(kChannel), "nucleus", std::move(data)));
  if (!sent.ok())
    spdlog::warn("could not announce this node's tools: {}", message_of(sent.status()));
}

void NodeTools::on_announcement(const EventPtr& event) {
  const Json& data = event->data;
  auto node = data.find("node");
  if (node == data.end() || !node->is_string() || node->get_ref<const std::string&>().empty()) {
    return;
  }
  const std::string& name = node->get_ref<const std::string&>();
  if (name == bus_.node_id()) return;
  if (data.value("ask", false)) local_changed();  // a new node wants ours
  static const Json kNone = Json::array();
  Change what;
  auto tools = data.find("tools");
  if (registry_.set_node_tools(name, tools != data.end() ? *tools : kNone)) {
    spdlog::debug("node {} offers {} tools", name, tools != data.end() ? tools->size() : 0);
    what.tools = true;
  }
  auto content = data.find("mcp");
  Json offered = content != data.end() && content->is_array() ? *content : Json::array();
  {
    std::lock_guard lock(content_mutex_);
    auto known = remote_content_.find(name);
    const bool had = known != remote_content_.end();
    if (had ? known->second != offered : !offered.empty()) {
      what.content = true;
      if (offered.empty()) {
        remote_content_.erase(known);
      } else {
        remote_content_[name] = std::move(offered);
      }
    }
  }
  if (what.tools || what.content) changed_(name, what);
}

std::vector<Manifest> NodeTools::remote_content() const {
  std::map<std::string, Manifest> modules;
  std::lock_guard lock(content_mutex_);
  for (const auto& [node, offered] : remote_content_) {
    for (const Json& entry : offered) {
      if (!entry.is_object() || !entry.contains("module") || !entry["module"].is_string()) continue;
      const std::string module = entry["module"].get<std::string>();
      if (module.empty() || modules.count(module) != 0) continue;  // the first node's
      Manifest manifest;
      manifest.name = module;
      // Only objects: a malformed entry from another node is dropped, not served.
      auto objects = [&entry](const char* key) {
        Json out = Json::array();
        auto list = entry.find(key);
        if (list == entry.end() || !list->is_array()) return out;
        for (const Json& item : *list) {
          if (item.is_object()) out.push_back(item);
        }
        return out;
      };
      manifest.mcp.resources = objects("resources");
      manifest.mcp.resource_templates = objects("resource_templates");
      manifest.mcp.prompts = objects("prompts");
      modules.emplace(module, std::move(manifest));
    }
  }
  std::vector<Manifest> out;
  out.reserve(modules.size());
  for (auto& [name, manifest] : modules) out.push_back(std::move(manifest));
  return out;
}

void NodeTools::on_node_left(const EventPtr& event) {
  auto node = event->data.find("node");
  if (node == event->data.end() || !node->is_string()) return;
  const std::string& name = node->get_ref<const std::string&>();
  if (name == bus_.node_id()) return;
  Change what;
  what.tools = registry_.remove_node(name);
  {
    std::lock_guard lock(content_mutex_);
    what.content = remote_content_.erase(name) > 0;
  }
  if (what.tools || what.content) changed_(name, what);
}

}  // namespace lotus
