using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using SharpTune.AI;
using SharpTune.Cli;
using SharpTune.Tests.Shared;
using ChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace SharpTune.Serving.Tests;

public class ServerTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private OpenAIClient Client(string key = ServerFixture.ApiKey) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseAddress, "/v1"), NetworkTimeout = TimeSpan.FromMinutes(2) });

    private async Task<(HttpStatusCode Status, string Body)> PostAsync(string path, string json)
    {
        using var response = await fixture.Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static JsonObject Error(string body) => JsonNode.Parse(body)!["error"]!.AsObject();

    [Fact]
    public async Task ListsTheModelsAndAnswersHealthChecks()
    {
        var models = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", (string)models["object"]!);
        Assert.Equal(["stories260K", "mini-bert"], models["data"]!.AsArray().Select(m => (string)m!["id"]!));
        var health = JsonNode.Parse(await new HttpClient { BaseAddress = fixture.BaseAddress }.GetStringAsync("/health"))!;
        Assert.Equal("ok", (string)health["status"]!);
    }

    [Fact]
    public async Task ChatThroughTheOpenAIClientWholeAndStreamed()
    {
        var chat = Client().GetChatClient("stories260K");
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 24 };
        List<OpenAI.Chat.ChatMessage> messages = [new SystemChatMessage("You tell stories."), new UserChatMessage("Tell me about a cat.")];
        ChatCompletion whole = await chat.CompleteChatAsync(messages, options);
        Assert.Equal(ChatMessageRole.Assistant, whole.Role);
        Assert.NotEmpty(whole.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Length, whole.FinishReason);
        Assert.Equal(24, whole.Usage.OutputTokenCount);
        Assert.Equal(fixture.Language.EncodeChat([new ChatMessage(ChatRole.System, "You tell stories."), new ChatMessage(ChatRole.User, "Tell me about a cat.")]).Count,
            whole.Usage.InputTokenCount);

        var streamed = new StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, options))
        {
            foreach (var part in update.ContentUpdate)
                streamed.Append(part.Text);
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.Equal(whole.Content[0].Text, streamed.ToString());
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Length, finish);
        Assert.Equal(24, usage?.OutputTokenCount);
    }

    [Fact]
    public async Task ChatThroughMicrosoftExtensionsAIOpenAIMatchesTheInProcessChatClient()
    {
        IChatClient remote = Client().GetChatClient("stories260K").AsIChatClient();
        using var local = new SharpTuneChatClient(fixture.Language);
        List<ChatMessage> messages = [new(ChatRole.User, "Once upon a time there was a dog.")];
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 30, StopSequences = ["!"] };

        var expected = await local.GetResponseAsync(messages, options);
        var response = await remote.GetResponseAsync(messages, options);
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(expected.FinishReason, response.FinishReason);
        Assert.Equal(expected.Usage!.OutputTokenCount, response.Usage!.OutputTokenCount);

        var updates = await remote.GetStreamingResponseAsync(messages, options).ToListAsync();
        Assert.Equal(expected.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.Contains(updates, u => u.FinishReason == expected.FinishReason);
    }

    [Fact]
    public async Task EmbeddingsThroughBothClientsEqualTheEncodersPooledStates()
    {
        string[] texts = ["The movie was great.", "A terrible, boring film."];
        var expected = await fixture.Embeddings.GenerateAsync(texts);

        EmbeddingClient client = Client().GetEmbeddingClient("mini-bert");
        OpenAIEmbeddingCollection viaOpenAI = await client.GenerateEmbeddingsAsync(texts);
        Assert.Equal(2, viaOpenAI.Count);
        for (var i = 0; i < texts.Length; i++)
            Assert.Equal(expected[i].Vector.ToArray(), viaOpenAI[i].ToFloats().ToArray());
        Assert.Equal(expected.Usage!.InputTokenCount, viaOpenAI.Usage.InputTokenCount);

        IEmbeddingGenerator<string, Embedding<float>> generator = client.AsIEmbeddingGenerator();
        var viaExtensions = await generator.GenerateAsync(texts);
        Assert.Equal(expected[1].Vector.ToArray(), viaExtensions[1].Vector.ToArray());
        Assert.Equal(256, expected[0].Vector.Length);

        var (status, body) = await PostAsync("/v1/embeddings", """{"model":"mini-bert","input":["one"],"encoding_format":"float"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var floats = JsonNode.Parse(body)!["data"]![0]!["embedding"]!.AsArray().Select(v => (float)v!).ToArray();
        Assert.Equal((await fixture.Embeddings.GenerateAsync(["one"]))[0].Vector.ToArray(), floats);
    }

    [Fact]
    public async Task AWrongOrMissingApiKeyGets401()
    {
        var error = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client("wrong-key").GetChatClient("stories260K").CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(401, error.Status);

        using var anonymous = new HttpClient { BaseAddress = fixture.BaseAddress };
        using var response = await anonymous.PostAsync("/v1/completions", new StringContent("""{"prompt":"hi"}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("invalid_api_key", (string)Error(await response.Content.ReadAsStringAsync())["code"]!);
        // The health endpoint stays open (for load balancers).
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task ATooLongPromptGets400()
    {
        var longText = string.Join(" ", Enumerable.Repeat("Once upon a time there was a little girl.", 80));
        var error = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client().GetChatClient("stories260K").CompleteChatAsync([new UserChatMessage(longText)]));
        Assert.Equal(400, error.Status);

        var (status, body) = await PostAsync("/v1/completions", JsonSerializer.Serialize(new { prompt = longText, max_tokens = 10 }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("context_length_exceeded", (string)Error(body)["code"]!);
        // A short prompt whose max_tokens would overflow the 512-token context is refused the same way.
        (status, body) = await PostAsync("/v1/completions", """{"prompt":"Hi","max_tokens":600}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("max_tokens", (string)Error(body)["param"]!);
    }

    [Theory]
    [InlineData("Once upon a time", 40)]
    [InlineData("Lily and Ben went to the park. They", 25)]
    public async Task GreedyCompletionsEqualSharptuneGenerate(string prompt, int tokens)
    {
        var output = Path.Combine(TestDirectories.NewTempDirectory("serve-greedy"), "generate.json");
        Assert.Equal(0, SharpTuneCli.Run(["generate", "--model", ServerFixture.Stories, "--prompt", prompt, "--max-new-tokens", tokens.ToString(),
            "--greedy", "--output", output]));
        var expected = (string)JsonNode.Parse(File.ReadAllText(output))!["generated_text"]!;

        var request = JsonSerializer.Serialize(new { model = "stories260K", prompt, max_tokens = tokens, temperature = 0 });
        var (status, body) = await PostAsync("/v1/completions", request);
        Assert.Equal(HttpStatusCode.OK, status);
        var whole = JsonNode.Parse(body)!;
        Assert.Equal(expected, (string)whole["choices"]![0]!["text"]!);
        Assert.Equal("text_completion", (string)whole["object"]!);
        Assert.Equal(tokens, (int)whole["usage"]!["completion_tokens"]!);

        var streamed = JsonSerializer.Serialize(new { model = "stories260K", prompt, max_tokens = tokens, temperature = 0, stream = true });
        var (streamStatus, events) = await PostAsync("/v1/completions", streamed);
        Assert.Equal(HttpStatusCode.OK, streamStatus);
        var data = events.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => Assert.Single(e.Split('\n'))).ToList();
        Assert.All(data, line => Assert.StartsWith("data: ", line));
        Assert.Equal("data: [DONE]", data[^1]);
        var chunks = data[..^1].Select(line => JsonNode.Parse(line["data: ".Length..])!["choices"]![0]!).ToList();
        Assert.Equal(expected, string.Concat(chunks.Select(c => (string)c["text"]!)));
        Assert.Equal("length", (string)chunks[^1]["finish_reason"]!);
    }

    [Theory]
    [InlineData("/v1/completions", "{not json", 400, "invalid_json")]
    [InlineData("/v1/completions", "[1,2]", 400, "invalid_json")]
    [InlineData("/v1/completions", """{"prompt":"Hi","max_tokens":"ten"}""", 400, "invalid_type")]
    [InlineData("/v1/completions", """{"prompt":"Hi","temperature":"hot"}""", 400, "invalid_type")]
    [InlineData("/v1/completions", """{"prompt":42}""", 400, "invalid_type")]
    [InlineData("/v1/completions", """{"prompt":"Hi","n":3}""", 400, null)]
    [InlineData("/v1/completions", """{"prompt":"Hi","max_tokens":99999999}""", 400, null)]
    [InlineData("/v1/completions", """{"prompt":"Hi","max_tokens":-1}""", 400, null)]
    [InlineData("/v1/completions", """{"prompt":[999999]}""", 400, null)]
    [InlineData("/v1/completions", """{"model":"gpt-4","prompt":"Hi"}""", 404, "model_not_found")]
    [InlineData("/v1/chat/completions", """{"messages":[]}""", 400, "invalid_type")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"wizard","content":"hi"}]}""", 400, null)]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":{"a":1}}]}""", 400, "invalid_type")]
    [InlineData("/v1/chat/completions", """{"messages":"hello"}""", 400, "invalid_type")]
    [InlineData("/v1/embeddings", """{"input":[1,2]}""", 400, "invalid_type")]
    [InlineData("/v1/embeddings", """{"input":"hi","dimensions":3}""", 400, null)]
    [InlineData("/v1/nothing", "{}", 404, "not_found")]
    public async Task BadRequestsGetOpenAIErrors(string path, string json, int expectedStatus, string? code)
    {
        var (status, body) = await PostAsync(path, json);
        Assert.Equal(expectedStatus, (int)status);
        var error = Error(body);
        Assert.False(string.IsNullOrEmpty((string?)error["message"]));
        Assert.NotNull((string?)error["type"]);
        Assert.Equal(code, (string?)error["code"]);
    }

    [Fact]
    public async Task AnOversizedBodyGets413AndTheServerKeepsServing()
    {
        var (status, body) = await PostAsync("/v1/completions", JsonSerializer.Serialize(new { prompt = new string('a', 100_000) }));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Equal("request_too_large", (string)Error(body)["code"]!);
        (status, _) = await PostAsync("/v1/completions", """{"prompt":"Hi","max_tokens":3}""");
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task AClientDisconnectingMidStreamCancelsItsSequence()
    {
        var generator = fixture.Language.Generator;
        var cancelledBefore = generator.CancelledSequences;
        // Greedy from this prompt runs all 480 tokens without an EOS: only the disconnect can end it early.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"prompt":"Once upon a time","max_tokens":480,"temperature":0,"stream":true}"""),
        };
        request.Headers.Authorization = new("Bearer", ServerFixture.ApiKey);
        var tokensBefore = generator.GeneratedTokens;
        // An abrupt disconnect: the client aborts the connection after the first event (no draining of the rest).
        using (var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = fixture.BaseAddress })
        using (var abort = new CancellationTokenSource())
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, abort.Token))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(abort.Token));
            Assert.StartsWith("data: {", await reader.ReadLineAsync(abort.Token));
            await abort.CancelAsync();
        }
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (generator.CancelledSequences == cancelledBefore && DateTime.UtcNow < deadline)
            await Task.Delay(20);
        Assert.Equal(cancelledBefore + 1, generator.CancelledSequences);
        Assert.True(generator.GeneratedTokens - tokensBefore < 480, $"{generator.GeneratedTokens - tokensBefore} tokens generated");
        var (status, _) = await PostAsync("/v1/completions", """{"prompt":"Hi","max_tokens":3}""");
        Assert.Equal(HttpStatusCode.OK, status);
    }
}
