using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using SharpTune.AI;
using SharpTune.Tests.Shared;

namespace SharpTune.Serving.Tests;

public class ChatClientTests
{
    [Fact]
    public async Task AModelsChatTemplateFormatsTheConversation()
    {
        var directory = TestDirectories.NewTempDirectory("serve-chat-template");
        try
        {
            foreach (var file in Directory.GetFiles(ServerFixture.Stories))
                File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
            var configPath = Path.Combine(directory, "tokenizer_config.json");
            var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
            config["chat_template"] = "{{ bos_token }}{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";
            File.WriteAllText(configPath, config.ToJsonString());

            using var client = SharpTuneChatClient.FromPretrained(directory);
            var format = Assert.IsType<TemplateChatFormat>(client.Service.ChatFormat);
            List<ChatMessage> messages = [new(ChatRole.System, "Be kind."), new(ChatRole.User, "Tell me a story.")];
            Assert.Equal("<s>System: Be kind.\nUser: Tell me a story.\nAssistant:", format.Format(messages));
            var ids = client.Service.EncodeChat(messages);
            // The template writes BOS itself: encoding adds no second one.
            Assert.Equal(client.Service.Tokenizer.Tokenizer.EncodeToIds("System: Be kind.\nUser: Tell me a story.\nAssistant:", addSpecialTokens: false).Select(i => (long)i).Prepend(1L), ids);

            var response = await client.GetResponseAsync(messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 12 });
            Assert.Equal(ids.Count, response.Usage!.InputTokenCount);
            Assert.Equal(12, response.Usage.OutputTokenCount);
            Assert.Equal(ChatFinishReason.Length, response.FinishReason);
            Assert.Equal(Path.GetFileName(directory), client.GetService<ChatClientMetadata>()!.DefaultModelId);
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public async Task TheChatClientStreamsSamplesReproduciblyAndHonoursCancellation()
    {
        using var client = SharpTuneChatClient.FromPretrained(ServerFixture.Stories);
        Assert.IsType<PlainChatFormat>(client.Service.ChatFormat);
        List<ChatMessage> messages = [new(ChatRole.User, "Tell me a story about a frog.")];
        var sampled = new ChatOptions { Temperature = 0.9f, TopP = 0.95f, Seed = 11, MaxOutputTokens = 20 };
        var first = await client.GetResponseAsync(messages, sampled);
        var second = await client.GetResponseAsync(messages, sampled);
        Assert.Equal(first.Text, second.Text);

        var updates = await client.GetStreamingResponseAsync(messages, sampled).ToListAsync();
        Assert.Equal(first.Text, string.Concat(updates.Select(u => u.Text)));
        var usage = Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>());
        Assert.Equal(first.Usage!.OutputTokenCount, usage.Details.OutputTokenCount);
        Assert.Equal(first.FinishReason, updates[^1].FinishReason);

        using var cancel = new CancellationTokenSource();
        var cancelledBefore = client.Service.Generator.CancelledSequences;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync(messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 400 }, cancel.Token))
                await cancel.CancelAsync();
        });
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (client.Service.Generator.CancelledSequences == cancelledBefore && DateTime.UtcNow < deadline)
            await Task.Delay(20);
        Assert.Equal(cancelledBefore + 1, client.Service.Generator.CancelledSequences);
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 1000 }));
    }
}

public class BusyServerTests
{
    [Fact]
    public async Task AFullQueueGets429AndTheQueuedRequestRunsOnceTheSlotFrees()
    {
        using var language = LanguageModelService.FromPretrained(ServerFixture.Stories,
            new LanguageModelOptions { Batching = new BatchingOptions { MaxBatchSize = 1, MaxQueuedRequests = 1 } });
        await using var server = SharpTuneServer.Create(new ServerOptions { Port = 0 }, language, logging: _ => { });
        await server.StartAsync();
        using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(server.Address) };

        // The situation under test needs A still decoding when C arrives; on a loaded machine A's 480 tokens can be done
        // first (C is then rightly admitted). Such a run says nothing, so it is repeated; a server that never refuses
        // still fails on the last attempt.
        for (var attempt = 1; ; attempt++)
        {
            // A: a long greedy stream holding the only batch slot.
            using var abort = new CancellationTokenSource();
            using var first = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = new StringContent("""{"prompt":"Once upon a time","max_tokens":480,"temperature":0,"stream":true}"""),
            };
            using var running = await http.SendAsync(first, HttpCompletionOption.ResponseHeadersRead, abort.Token);
            using var reader = new StreamReader(await running.Content.ReadAsStreamAsync(abort.Token));
            Assert.StartsWith("data: {", await reader.ReadLineAsync(abort.Token));

            // B waits in the queue; C finds it full.
            var queued = http.PostAsync("/v1/completions", new StringContent("""{"prompt":"Hi","max_tokens":4}"""));
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (language.Generator.QueuedRequests == 0 && DateTime.UtcNow < deadline)
                await Task.Delay(10);
            using var refused = await http.PostAsync("/v1/completions", new StringContent("""{"prompt":"Hi","max_tokens":4}"""));
            if ((int)refused.StatusCode == 200 && attempt < 3)
            {
                await abort.CancelAsync();
                (await queued.WaitAsync(TimeSpan.FromSeconds(60))).Dispose();
                continue;
            }
            Assert.Equal(429, (int)refused.StatusCode);
            var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("rate_limit_exceeded", (string)error["code"]!);

            await abort.CancelAsync();
            using var answered = await queued.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(200, (int)answered.StatusCode);
            Assert.Equal(4, (int)JsonNode.Parse(await answered.Content.ReadAsStringAsync())!["usage"]!["completion_tokens"]!);
            break;
        }
    }
}
