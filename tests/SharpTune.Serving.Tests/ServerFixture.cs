using SharpTune.AI;
using SharpTune.Tests.Shared;

namespace SharpTune.Serving.Tests;

/// <summary>One server for the test class: models/stories260K for chat and completions, models/mini-bert for
/// embeddings, on a free loopback port, with an API key.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string ApiKey = "test-key-123";
    public static string Stories { get; } = Path.Combine(TestDirectories.Root, "models", "stories260K");
    public static string MiniBert { get; } = Path.Combine(TestDirectories.Root, "models", "mini-bert");

    public LanguageModelService Language { get; private set; } = null!;
    public SharpTuneEmbeddingGenerator Embeddings { get; private set; } = null!;
    public SharpTuneServer Server { get; private set; } = null!;
    public Uri BaseAddress { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Language = LanguageModelService.FromPretrained(Stories);
        Embeddings = SharpTuneEmbeddingGenerator.FromPretrained(MiniBert);
        Server = SharpTuneServer.Create(new ServerOptions { Port = 0, ApiKey = ApiKey, MaxRequestBodyBytes = 64 * 1024 }, Language, Embeddings,
            logging: _ => { });
        await Server.StartAsync();
        BaseAddress = new Uri(Server.Address);
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
        Http.DefaultRequestHeaders.Authorization = new("Bearer", ApiKey);
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Language.Dispose();
        Embeddings.Dispose();
    }
}
