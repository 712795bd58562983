using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace SharpTune.Hub;

/// <summary>
/// Where the cache is, which Hub to ask and with which token. <see cref="FromEnvironment"/> reads the variables
/// huggingface_hub reads, so both share one cache: <c>HF_HUB_CACHE</c> (else <c>$HF_HOME/hub</c>, else
/// <c>$XDG_CACHE_HOME/huggingface/hub</c>, else <c>~/.cache/huggingface/hub</c>), <c>HF_ENDPOINT</c>,
/// <c>HF_TOKEN</c> (else the token file <c>huggingface-cli login</c> writes) and <c>HF_HUB_OFFLINE</c>.
/// </summary>
public sealed record HubOptions
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The hub cache folder (holds <c>models--org--name</c> folders).</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>The Hub's base URL. A token is sent to this origin only, and never over plain http unless the host is
    /// loopback.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>Access token for gated and private repositories and for uploads; null: anonymous.</summary>
    public string? Token { get; init; }

    /// <summary>Never contact the Hub: only what the cache holds is found.</summary>
    public bool Offline { get; init; }

    /// <summary>Attempts per file transfer before giving up (network errors and HTTP 5xx/429 are retried with
    /// exponential backoff; an interrupted download resumes where it stopped).</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>The first retry's delay; each further retry doubles it.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Where downloads, retries and fallbacks to the cache are logged.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    public static HubOptions FromEnvironment()
    {
        string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;
        var home = Env("HF_HOME") ?? Path.Combine(Env("XDG_CACHE_HOME") ?? Path.Combine(UserHome(), ".cache"), "huggingface");
        var cache = Env("HF_HUB_CACHE") ?? Env("HUGGINGFACE_HUB_CACHE") ?? Path.Combine(home, "hub");
        var token = Env("HF_TOKEN") ?? Env("HUGGING_FACE_HUB_TOKEN") ?? ReadTokenFile(Env("HF_TOKEN_PATH") ?? Path.Combine(home, "token"));
        return new HubOptions
        {
            CacheDirectory = ExpandHome(cache),
            Endpoint = (Env("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/'),
            Token = token,
            Offline = IsTrue(Env("HF_HUB_OFFLINE")),
        };
    }

    /// <summary>huggingface_hub's truthy values: 1, ON, YES, TRUE (any case).</summary>
    internal static bool IsTrue(string? value) =>
        value is not null && new[] { "1", "ON", "YES", "TRUE" }.Contains(value.Trim().ToUpperInvariant());

    private static string? ReadTokenFile(string path) =>
        File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 } token ? token : null;

    private static string UserHome() => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    private static string ExpandHome(string path) =>
        path == "~" || path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(UserHome(), path.TrimStart('~').TrimStart('/')) : path;

    /// <summary>Throws unless a token may be sent to <paramref name="endpoint"/>: an absolute https URL, or http to a
    /// loopback host (a local test server). Plain http elsewhere would expose the token on the wire.</summary>
    public static void EnsureTokenSafe(string endpoint)
    {
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
            throw new ArgumentException($"Hub endpoint '{endpoint}' is not an http(s) URL");
        if (uri.Scheme == Uri.UriSchemeHttp && !uri.IsLoopback)
            throw new ArgumentException($"refusing to send a Hugging Face token over plain http to {uri.Host}: use an https endpoint " +
                                        "(plain http is allowed only for a loopback host)");
    }
}
