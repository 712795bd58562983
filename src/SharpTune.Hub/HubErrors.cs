namespace SharpTune.Hub;

/// <summary>A Hub request or cache lookup that failed for a reason the user can act on; the message says which.</summary>
public class HubException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>The repository, revision or file does not exist (HTTP 404, or 401 without a token, as the Hub hides
/// private repositories).</summary>
public sealed class HubNotFoundException(string message) : HubException(message);

/// <summary>The repository is gated or private and the request had no token, or one without access (HTTP 401/403).</summary>
public sealed class HubAccessDeniedException(string message) : HubException(message);

/// <summary>Offline (HF_HUB_OFFLINE, or the Hub unreachable) and the files asked for are not in the cache.</summary>
public sealed class HubOfflineException(string message, Exception? inner = null) : HubException(message, inner);

/// <summary>A downloaded file does not match the hash the Hub announced for it; it was discarded.</summary>
public sealed class HubChecksumException(string message) : HubException(message);
